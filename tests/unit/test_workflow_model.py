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
                     "before-build 1", "nox -s build-torch", "Upload wheels and records", "Upload build logs"]
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
