"""The workflow model (wheelfactory/ci/workflow.py) as plain data: jobs, their order and hand-overs."""

from __future__ import annotations

import json

import pytest

from conftest import write_project
from wheelfactory.ci import workflow
from wheelfactory.errors import ConfigError
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import load_all


def model_of(root):
    config = load_config(root)
    return workflow.workflow_model(config, load_all(config.paths.recipes))


def test_jobs_follow_the_recipe_graph(tmp_path):
    root = write_project(tmp_path / "p", recipes=["numpy", "torch", "cffi"], config='''
        [paths]
        dist = "out/dist"
        [ci]
        before-build = ["echo hi"]
    ''')
    jobs = model_of(root)["jobs"]
    assert (list(jobs)[0], list(jobs)[-1]) == ("plan", "publish")
    assert list(jobs).index("build-numpy") < list(jobs).index("build-torch")
    torch = jobs["build-torch"]
    assert torch["needs"] == ["plan", "build-numpy"]
    names = [s.get("name", s.get("uses")) for s in torch["steps"]]
    assert names == ["actions/checkout@v5", "Install the engine", "Wheels of numpy built in this run",
                     "before-build 1", "nox -s build-torch", "Attest the wheels' build provenance",
                     "Upload wheels and records", "Upload build logs"]
    assert torch["steps"][2]["with"] == {"name": "dist-numpy", "path": "out/dist"}
    assert jobs["build-cffi"]["needs"] == ["plan"]
    assert jobs["publish"]["needs"] == ["plan", *[j for j in jobs if j.startswith("build-")]]


def test_the_token_reaches_only_fetch_dist_and_publish(tmp_path):
    root = write_project(tmp_path / "p", recipes=["multidict"], config='''
        [publish]
        token-env = "WHEELS_TOKEN"
        [ci]
        publish-token-secret = "PAGES_TOKEN"
    ''')
    model = model_of(root)
    with_secret = [(job, s["name"]) for job, j in model["jobs"].items() for s in j["steps"]
                   if "secrets." in json.dumps(s)]
    assert with_secret == [("publish", "invoke fetch-dist"), ("publish", "invoke publish")]
    step = next(s for s in model["jobs"]["publish"]["steps"] if s.get("name") == "invoke publish")
    assert step["env"] == {"WHEELS_TOKEN": "${{ secrets.PAGES_TOKEN }}"}
    assert model["permissions"] == {} and model["jobs"]["publish"]["permissions"] == {"contents": "write", "pages": "read"}


def test_disabled_recipes_are_named_in_the_header(tmp_path):
    root = write_project(tmp_path / "p", recipes=["numpy", "torch"])
    path = root / "recipes/numpy/recipe.toml"
    path.write_text(path.read_text().replace('version = "2.5.5"', 'version = "2.5.5"\ndisabled = "meson bug"'))
    model = model_of(root)
    assert set(model["jobs"]) == {"plan", "publish"}
    assert model["__header__"][-1] == "No job for: numpy (disabled: meson bug); torch (needs numpy, which is disabled)"


def test_paths_outside_the_project_are_refused(tmp_path):
    root = write_project(tmp_path / "p", recipes=["multidict"], config=f'[paths]\ndist = "{tmp_path / "elsewhere"}"\n')
    with pytest.raises(ConfigError, match=r"factory.toml: 'paths.dist' is outside the project"):
        model_of(root)


# --- boards for real (issue 15): caches, timeouts, provenance, the publish queue ----------------


def test_build_jobs_keep_the_cache_outside_the_checkout(tmp_path):
    root = write_project(tmp_path / "p", recipes=["multidict"])
    jobs = model_of(root)["jobs"]
    for job in ("build-multidict", "publish"):
        assert jobs[job]["env"] == {"WHEELFACTORY_CACHE": "~/.cache/wheelfactory"}
    root = write_project(tmp_path / "q", recipes=["multidict"], config='[ci]\ncache-dir = "/srv/wf-cache"\n')
    assert model_of(root)["jobs"]["build-multidict"]["env"] == {"WHEELFACTORY_CACHE": "/srv/wf-cache"}


def test_job_timeouts_come_from_the_recipe_with_a_default_and_a_ceiling(tmp_path):
    root = write_project(tmp_path / "p", recipes=["numpy", "torch", "grpcio", "multidict"],
                         config="[ci]\ntimeout-minutes = 240\n")
    jobs = model_of(root)["jobs"]
    assert jobs["build-multidict"]["timeout-minutes"] == 240  # [ci].timeout-minutes
    assert jobs["build-grpcio"]["timeout-minutes"] == 900 and jobs["build-torch"]["timeout-minutes"] == 7200
    path = root / "recipes/multidict/recipe.toml"
    path.write_text(path.read_text().replace("[build]", "[build]\ntimeout-minutes = 7201", 1)
                    if "[build]" in path.read_text() else path.read_text() + "\n[build]\ntimeout-minutes = 7201\n")
    from wheelfactory.errors import RecipeError
    with pytest.raises(RecipeError, match=r"'build.timeout-minutes' 7201 is not between 0 and 7200: GitHub ends "
                                          r"a self-hosted job after 5 days"):
        model_of(root)
    bad = write_project(tmp_path / "q", config="[ci]\ntimeout-minutes = 10000\n")
    with pytest.raises(ConfigError, match=r"'ci.timeout-minutes' 10000 is not between 1 and 7200"):
        load_config(bad)


def test_the_timeout_line_is_no_build_input(tmp_path):
    """Setting how long CI waits rebuilds nothing: the recipe's fingerprint (its build key) is unchanged."""
    root = write_project(tmp_path / "p", recipes=["numpy"])
    recipes = root / "recipes"
    before = load_all(recipes)["numpy"].fingerprint(root / "patches")
    path = recipes / "numpy/recipe.toml"
    path.write_text(path.read_text().replace("[build]\n", "[build]\ntimeout-minutes = 60  # a board\n", 1))
    after = load_all(recipes)["numpy"]
    assert after.build.timeout_minutes == 60 and after.fingerprint(root / "patches") == before
    path.write_text(path.read_text().replace("[build]\n", "[build]\nexclusive = true\n", 1))
    assert load_all(recipes)["numpy"].fingerprint(root / "patches") != before  # any other value is a build input


def test_build_jobs_attest_their_wheels_with_only_the_permissions_it_needs(tmp_path):
    root = write_project(tmp_path / "p", recipes=["multidict"])
    job = model_of(root)["jobs"]["build-multidict"]
    assert job["permissions"] == {"contents": "read", "id-token": "write", "attestations": "write"}
    names = [s.get("name") for s in job["steps"]]
    attest = job["steps"][names.index("Attest the wheels' build provenance")]
    assert attest["uses"] == "actions/attest-build-provenance@v3"
    assert attest["with"] == {"subject-path": "dist/multidict-*.whl"}
    assert attest["if"] == "github.event_name != 'pull_request'"
    assert names.index("nox -s build-multidict") < names.index("Attest the wheels' build provenance") \
        < names.index("Upload wheels and records")
    # Only build jobs mint OIDC tokens.
    jobs = model_of(root)["jobs"]
    assert [j for j, v in jobs.items() if "id-token" in v["permissions"]] == ["build-multidict"]


def test_publishes_queue_instead_of_replacing_each_other(tmp_path):
    root = write_project(tmp_path / "p", recipes=["multidict"])
    assert model_of(root)["jobs"]["publish"]["concurrency"] == {
        "group": "wheels-publish", "cancel-in-progress": False, "queue": "max"}
