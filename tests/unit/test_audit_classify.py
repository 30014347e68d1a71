"""The audit's own target rules and its per-package verdicts, on files made up here (no network)."""

from __future__ import annotations

import pytest

from conftest import write_project
from wheelfactory._util.simple_api import ProjectFile
from wheelfactory.audit.classify import best_wheel, classify
from wheelfactory.audit.resolve import Pin, audit_target, parse_compile_output
from wheelfactory.errors import ConfigError
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.target import Target, host_arch, host_glibc

RISCV = Target("riscv64", "manylinux_2_39")


def _config(tmp_path, policy="manylinux_2_39", arch="riscv64", pythons='["3.13", "3.11"]'):
    root = write_project(tmp_path / "p", host_target=False,
                         config=f'[target]\narch = "{arch}"\npolicy = "{policy}"\npythons = {pythons}\n')
    return load_config(root)


def test_audit_target_sorts_pythons_and_resolves_best_on_the_host(tmp_path):
    target, pythons = audit_target(_config(tmp_path))
    assert (target, pythons) == (RISCV, ("3.11", "3.13"))
    target, _ = audit_target(_config(tmp_path, policy="best", arch=host_arch()), ["3.12"])
    assert target.policy == f"manylinux_2_{host_glibc()[1]}"


@pytest.mark.parametrize("policy, arch, pythons, message", [
    ("best", "riscv64" if host_arch() != "riscv64" else "x86_64", '["3.12"]', "needs a manylinux_2_NN policy"),
    ("linux", "riscv64", '["3.12"]', "needs a manylinux_2_NN policy"),
    ("manylinux_2_39", "riscv64", '["3"]', "'target.pythons' has '3', which is not a CPython version X.Y"),  # at load
])
def test_audit_target_refuses_what_it_cannot_check(tmp_path, policy, arch, pythons, message):
    with pytest.raises(ConfigError, match=message):
        audit_target(_config(tmp_path, policy=policy, arch=arch, pythons=pythons))


def _wheel(filename, requires_python="", yanked=None):
    return ProjectFile(filename, "", "", requires_python, yanked, "wheel", filename.split("-")[1])


SDIST = ProjectFile("wf_x-1.0.tar.gz", "https://f/wf_x-1.0.tar.gz", "a" * 64, "", None, "sdist", "1.0")


def test_best_wheel_prefers_the_tag_then_the_build():
    files = [_wheel("wf_x-1.0-cp312-abi3-manylinux_2_28_riscv64.whl"),
             _wheel("wf_x-1.0-1-cp312-cp312-manylinux_2_31_riscv64.whl"),
             _wheel("wf_x-1.0-2-cp312-cp312-manylinux_2_31_riscv64.whl"),
             _wheel("wf_x-1.0-3-cp312-cp312-manylinux_2_31_riscv64.whl", yanked=""),
             _wheel("wf_x-1.0-cp312-cp312-manylinux_2_41_riscv64.whl"),
             _wheel("wf_x-1.0-cp312-cp312-linux_riscv64.whl")]
    f, tag, build = best_wheel(files, RISCV, "3.12")
    assert (f.filename, str(tag), build) == ("wf_x-1.0-2-cp312-cp312-manylinux_2_31_riscv64.whl",
                                             "cp312-cp312-manylinux_2_31_riscv64", "2")
    assert best_wheel(files[-1:], RISCV, "3.12") is None
    assert str(best_wheel(files[-1:], RISCV, "3.12", allow_linux=True)[1]) == "cp312-cp312-linux_riscv64"
    assert best_wheel([_wheel("wf_x-1.0-cp312-cp312-manylinux_2_31_riscv64.whl", ">=3.13")], RISCV, "3.12") is None


def test_classify_per_python(tmp_path):
    pin = Pin("wf-x", "1.0", "", ["(requested)"])
    pypi = [SDIST, _wheel("wf_x-1.0-cp312-cp312-manylinux_2_39_riscv64.whl"), _wheel("wf_x-1.0-py3-none-any.whl")]
    ours = [_wheel("wf_x-1.0-1-cp311-cp311-linux_riscv64.whl")]
    report = classify(pin, ["3.11", "3.12"], RISCV, pypi, ours, tmp_path, [])
    assert report.status == "our-wheel"
    assert {py: v.source for py, v in report.per_python.items()} == {"3.11": "ours", "3.12": "pypi"}
    report = classify(pin, ["3.11", "3.13"], RISCV, pypi, [], tmp_path, [])
    assert report.status == "pure"  # py3-none-any for both, a compiled wheel only elsewhere
    report = classify(pin, ["3.13"], RISCV, [SDIST], [], tmp_path, [])
    assert (report.status, report.needs_recipe, report.sdist["filename"]) == ("needs-recipe", True, SDIST.filename)
    assert classify(pin, ["3.13"], RISCV, [], [], tmp_path, []).status == "needs-git-recipe"
    assert classify(pin, ["3.13"], RISCV, [], [], tmp_path, ["wf-*"]).status == "ignored"


def test_compile_output_and_markers():
    pins = parse_compile_output("numpy==2.3.5 ; python_full_version < '3.12'  # via -r requirements.in, wf-x\n"
                                "numpy==2.4.0 ; python_full_version >= '3.12'  # via wf-x\n"
                                "pywin32==311 ; sys_platform == 'win32'  # via wf-x\n")
    assert [(p.name, p.version, p.via) for p in pins][0] == ("numpy", "2.3.5", ["(requested)", "wf-x"])
    pythons = ("3.11", "3.12", "3.13")
    assert [p.pythons(RISCV, pythons) for p in pins] == [["3.11"], ["3.12", "3.13"], []]
