"""Runner labels and the workflow's names: shapes checked when factory.toml loads, the rest when the
workflow is generated (it needs [runners].labels, [ci].hosted-labels and the recipes)."""

from __future__ import annotations

import pytest

from conftest import write_project
from wheelfactory.ci import workflow
from wheelfactory.errors import ConfigError
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import load_all


@pytest.mark.parametrize("table, key, shown", [
    ("ci", "runner-labels", "'ci.runner-labels'"),
    ("ci", "hosted-labels", "'ci.hosted-labels'"),
    ("ci", "plan-runs-on", "'ci.plan-runs-on'"),
    ("ci", "publish-runs-on", "'ci.publish-runs-on'"),
    ("runners", "labels", "[runners].labels"),
])
@pytest.mark.parametrize("label", ["risc v", "a,b", "-lead", "x" * 101, ""])
def test_a_badly_shaped_label_is_refused_at_load(tmp_path, table, key, shown, label):
    root = write_project(tmp_path / "p", config=f'[{table}]\n{key} = ["self-hosted", "{label}"]\n')
    with pytest.raises(ConfigError) as e:
        load_config(root)
    assert str(e.value) == (f"{root / 'factory.toml'}: {shown} has label {label!r}: labels are letters, digits, "
                            f"'.', '_' and '-' (no spaces or commas), at most 100 characters")


def test_recipe_labels_shapes_and_good_labels(tmp_path):
    root = write_project(tmp_path / "p", config='[ci]\nrecipe-labels = { torch = "big board" }\n')
    with pytest.raises(ConfigError, match=r"'ci.recipe-labels.torch' has label 'big board': labels are letters"):
        load_config(root)
    good = write_project(tmp_path / "q", config='[ci]\nrecipe-labels = { torch = ["big", "x86_64.v2"] }\n'
                                                'hosted-labels = ["ubuntu-24.04-riscv", "A1"]\n')
    assert load_config(good).ci.recipe_labels == {"torch": ["big", "x86_64.v2"]}


@pytest.mark.parametrize("name", ["../wheels", "my wheels", "a/b", ""])
def test_workflow_name_must_be_a_plain_file_name(tmp_path, name):
    root = write_project(tmp_path / "p", config=f'[ci]\nworkflow-name = "{name}"\n')
    with pytest.raises(ConfigError, match=r"factory.toml: 'ci.workflow-name' .* must be a plain file name"):
        load_config(root)


def test_self_hosted_labels_must_be_registered_ones(tmp_path):
    root = write_project(tmp_path / "p", recipes=["multidict"], config='''
        [ci]
        runner-labels = ["self-hosted", "linux", "riscv46", "wheelfactory"]
    ''', host_target=False)
    config = load_config(root)  # the shapes are fine; what the boards carry is known only from [runners]
    with pytest.raises(ConfigError) as e:
        workflow.build_labels(config, load_all(config.paths.recipes))
    assert "'ci.runner-labels' asks for label 'riscv46'" in str(e.value)
    assert "(did you mean 'riscv64'?)" in str(e.value) and "[runners].labels" in str(e.value)


def test_a_hosted_set_is_exactly_one_hosted_label(tmp_path):
    root = write_project(tmp_path / "p", config='[ci]\nrunner-labels = ["ubuntu-24.04-riscv", "linux"]\n')
    with pytest.raises(ConfigError, match=r"is neither a self-hosted set .* nor one hosted runner label"):
        workflow.check_runs_on(load_config(root), ["ubuntu-24.04-riscv", "linux"], "ci.runner-labels")
    workflow.check_runs_on(load_config(root), ["ubuntu-24.04-riscv"], "ci.runner-labels")


def test_plan_job_may_run_on_any_hosted_label(tmp_path):
    root = write_project(tmp_path / "p", config='[ci]\nplan-runs-on = ["windows-latest"]\n')
    assert workflow.plan_labels(load_config(root)) == ["windows-latest"]
    root = write_project(tmp_path / "q", config='[ci]\nplan-runs-on = []\n')
    with pytest.raises(ConfigError, match="'ci.plan-runs-on' is empty"):
        workflow.plan_labels(load_config(root))


# --- the factory's own label, system labels, runner kinds, the cache folder (issue 15) -----------


def test_defaults_target_the_system_labels_plus_the_factory_label(tmp_path):
    config = load_config(write_project(tmp_path / "p", host_target=False))
    assert config.runner_kind == "github-act-runner"  # actions/runner has no riscv64 build
    assert config.system_labels == ["self-hosted", "linux", "riscv64"]
    assert config.build_runs_on == ["self-hosted", "linux", "riscv64", "wheelfactory"]
    assert config.board_labels == ["wheelfactory"]
    x86 = load_config(write_project(tmp_path / "q", config='[target]\narch = "x86_64"\n', host_target=False))
    assert x86.runner_kind == "official" and x86.build_runs_on == ["self-hosted", "linux", "X64", "wheelfactory"]


@pytest.mark.parametrize("config, message", [
    ('[runners]\nlabels = ["big", "riscv64"]',
     ("[runners].labels has 'riscv64', which the runner registers by itself as a read-only system label "
      "(self-hosted, linux, riscv64); GitHub cannot remove it, so `drain` could not stop jobs that ask for it. "
      "Remove 'riscv64' from [runners].labels")),
    ('[runners]\nfactory-label = "Linux"', "[runners].factory-label has 'Linux', which the runner registers by itself"),
    ('[ci]\nrunner-labels = ["self-hosted", "linux", "riscv64"]',
     ("'ci.runner-labels' = ['self-hosted', 'linux', 'riscv64'] lacks the factory's label 'wheelfactory' "
      "([runners].factory-label): `drain` takes that label away to stop new jobs, so a job without it could land "
      "on a draining board. Add 'wheelfactory' to 'ci.runner-labels'")),
    ('[ci]\npublish-runs-on = ["self-hosted", "riscv64"]', "'ci.publish-runs-on' = ['self-hosted', 'riscv64'] lacks"),
    ('[runners]\nkind = "official"',
     ("[runners].kind 'official' has no runner build for target.arch riscv64 (it runs on x86_64, aarch64, "
      "armv7l); set [runners].kind = \"github-act-runner\" (or remove the key: the default for riscv64)")),
    ('[target]\narch = "loongarch64"',
     "[runners].kind 'github-act-runner' has no runner build for target.arch loongarch64"),
    ('[ci]\ncache-dir = "cache"', "'ci.cache-dir' 'cache' is inside the checkout"),
    ('[ci]\ncache-dir = "{root}/.ci-cache"', "is inside the checkout"),
    ('[runners]\nconfigure-command = ["./config.sh", "--token", "{token}"]',
     "[runners].configure-command: {token} in '{token}' would put the registration token on the command line"),
])
def test_runner_and_ci_bad_input_is_one_message_at_load(tmp_path, config, message):
    root = tmp_path / "p"
    root = write_project(root, config=config.replace("{root}", str(root)), host_target=False)
    with pytest.raises(ConfigError) as e:
        load_config(root)
    assert str(e.value).startswith(f"{root / 'factory.toml'}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_cache_folder_outside_the_checkout_is_fine(tmp_path):
    root = write_project(tmp_path / "p", config=f'[ci]\ncache-dir = "{tmp_path / "cache"}"\n')
    assert load_config(root).ci.cache_dir == str(tmp_path / "cache")


def test_the_jobs_cache_variable_moves_paths_cache_and_expands_the_runners_home(tmp_path, monkeypatch):
    root = write_project(tmp_path / "p")
    assert load_config(root).paths.cache == root / "cache"
    monkeypatch.setenv("HOME", str(tmp_path / "runner-home"))
    monkeypatch.setenv("WHEELFACTORY_CACHE", "~/.cache/wheelfactory")  # as the generated job sets it
    assert load_config(root).paths.cache == tmp_path / "runner-home/.cache/wheelfactory"
