"""factory.toml: strict like recipes, defaults filled, host retargeting."""

import pytest

from wheelfactory.settings.factory import host_arch, load_config
from wheelfactory.errors import ConfigError

from conftest import REPO


def test_repo_config_targets_riscv64_manylinux_2_39():
    config = load_config(REPO)
    assert config.arch == "riscv64"
    assert config.policy == "manylinux_2_39"
    assert config.pythons  # at least one Python to build for
    assert config.paths.dist == REPO / "dist"


def test_unknown_key_suggests_the_right_one(tmp_path):
    (tmp_path / "factory.toml").write_text('[target]\npolcy = "manylinux_2_39"\n')
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path)
    msg = str(e.value)
    assert "factory.toml" in msg and "target.polcy" in msg and "did you mean 'policy'" in msg


def test_wrong_type_names_key_and_expected_type(tmp_path):
    (tmp_path / "factory.toml").write_text('[target]\npythons = "3.12"\n')
    with pytest.raises(ConfigError, match=r"'target.pythons' must be a list of strings"):
        load_config(tmp_path)


def test_unknown_section_is_rejected(tmp_path):
    (tmp_path / "factory.toml").write_text("[emulaton]\nsuite = 'sid'\n")
    with pytest.raises(ConfigError, match=r"unknown section \[emulaton\].*did you mean 'emulation'"):
        load_config(tmp_path)


def test_for_host_keeps_everything_but_the_target(tmp_path):
    (tmp_path / "factory.toml").write_text('[emulation]\nsuite = "forky"\n')
    config = load_config(tmp_path).for_host()
    assert config.arch == host_arch()
    assert config.policy == "best"
    assert config.emulation.suite == "forky"


def test_invalid_runner_choice(tmp_path):
    (tmp_path / "factory.toml").write_text('[build]\nrunner = "qemu"\n')
    with pytest.raises(ConfigError, match="build.runner"):
        load_config(tmp_path)


@pytest.mark.parametrize(("target", "arch"), [(None, "riscv64"), ("riscv64", "riscv64"), ("host", host_arch())])
def test_prove_and_outdated_take_the_configured_arch_or_host_as_target(target, arch):
    from wheelfactory.cli.upkeep import _config

    assert _config(REPO, target).arch == arch


def test_another_target_arch_is_refused_naming_the_ones_it_takes():
    from wheelfactory.audit.upstream import UpstreamError
    from wheelfactory.cli.upkeep import _config

    with pytest.raises(UpstreamError, match=r"--target must be 'host', 'riscv64' \(target.arch in factory.toml\)"):
        _config(REPO, "aarch64")
