"""settings.target.Target: the one rule set for the wheel tags a target accepts, checked against packaging/pip."""

from __future__ import annotations

import sys

import pytest
from packaging import tags

from wheelfactory.settings.target import Target, host_arch, host_glibc, parse_policy, reached_policy


def _pip_platforms() -> list[str]:
    """What pip on this host accepts (packaging.tags), minus musllinux and linux_* (PyPI refuses linux_*)."""
    return [p for p in tags.platform_tags() if not p.startswith(("musllinux_", "linux_"))]


def test_best_on_the_host_is_what_pip_here_accepts():
    target = Target(host_arch(), "best")
    assert target.platforms() == _pip_platforms()
    assert target.resolved_policy == f"manylinux_{host_glibc()[0]}_{host_glibc()[1]}"
    assert target.plat() == "auto"


def test_supported_tags_on_the_host_are_pips_order():
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    expected = [t for t in tags.sys_tags() if not t.platform.startswith(("musllinux_", "linux_"))]
    assert list(Target(host_arch(), "best").supported_tags(python)) == expected


def test_riscv64_manylinux_2_39_list_and_order():
    target = Target("riscv64", "manylinux_2_39")
    assert target.platforms() == [f"manylinux_2_{m}_riscv64" for m in range(39, 16, -1)] + ["manylinux2014_riscv64"]
    assert target.platforms(allow_linux=True)[-1] == "linux_riscv64"
    assert target.plat() == "manylinux_2_39_riscv64"
    order = target.tag_priority("3.12")
    first = [str(t) for t in sorted(order, key=order.get)[:3]]
    assert first == ["cp312-cp312-manylinux_2_39_riscv64", "cp312-cp312-manylinux_2_38_riscv64",
                     "cp312-cp312-manylinux_2_37_riscv64"]
    # A compiled wheel beats abi3, which beats a pure wheel; glibc newer than the policy, musl and
    # other arches are not accepted.
    assert order[tags.Tag("cp312", "cp312", "manylinux_2_17_riscv64")] < \
        order[tags.Tag("cp312", "abi3", "manylinux_2_39_riscv64")] < order[tags.Tag("py3", "none", "any")]
    assert tags.Tag("cp311", "abi3", "manylinux_2_28_riscv64") in order
    for refused in ("manylinux_2_40_riscv64", "musllinux_1_2_riscv64", "manylinux_2_17_x86_64", "linux_riscv64"):
        assert tags.Tag("cp312", "cp312", refused) not in order
    assert tags.Tag("cp312", "cp312", "linux_riscv64") in target.tag_priority("3.12", allow_linux=True)


def test_x86_64_goes_down_to_glibc_2_5_with_the_legacy_aliases():
    plats = Target("x86_64", "manylinux_2_17").platforms()
    assert plats[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert plats[plats.index("manylinux_2_12_x86_64") + 1] == "manylinux2010_x86_64"
    assert plats[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]


def test_best_off_the_host_is_the_newest_policy_known():
    other = "riscv64" if host_arch() != "riscv64" else "x86_64"
    assert Target(other, "best").platforms()[0] == f"manylinux_2_39_{other}"


@pytest.mark.parametrize("plats, policy", [
    (["manylinux_2_17_x86_64", "manylinux2014_x86_64"], "manylinux_2_17"),
    (["manylinux_2_39_riscv64", "manylinux_2_28_riscv64"], "manylinux_2_28"),
    (["manylinux1_x86_64"], "manylinux_2_5"),
    (["manylinux2010_x86_64", "manylinux_2_17_x86_64"], "manylinux_2_12"),
    (["linux_riscv64"], None),
    (["any"], None),
])
def test_reached_policy(plats, policy):
    assert reached_policy(plats) == policy


@pytest.mark.parametrize("text, parsed", [
    ("manylinux_2_39", (2, 39)),
    ("manylinux_2_17", (2, 17)),
    ("best", None),
    ("manylinux2014", None),
    ("manylinux_2_39_riscv64", None),
    ("linux", None),
])
def test_parse_policy(text, parsed):
    assert parse_policy(text) == parsed


def test_marker_environment_of_the_target():
    env = Target("riscv64", "manylinux_2_39").marker_env("3.12")
    assert (env["platform_machine"], env["python_version"], env["sys_platform"]) == ("riscv64", "3.12", "linux")
