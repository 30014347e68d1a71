"""A disabled recipe (package.disabled) asked for by name is an error with the reason and the fix;
in build-all it stays a skip (issue #16). A disabled recipe that a named one needs is an error too:
the named recipe could not be built, and exit 0 would say it was."""

from __future__ import annotations

import pytest
from conftest import write_project, write_recipe
from support.build import tree_snapshot

from wheelfactory import cli
from wheelfactory.cli import build as build_cli

REASON = "upstream ships riscv64 wheels since 2.0"


def _recipe(name: str, *, disabled: str = "", depends: tuple[str, ...] = ()) -> str:
    return (f'[package]\nname = "{name}"\nversion = "1.0"\n' + (f'disabled = "{disabled}"\n' if disabled else "")
            + f'[source]\nurl = "http://127.0.0.1:9/{name}-1.0.tar.gz"\nsha256 = "{"0" * 64}"\n'
            + f"[build]\ndepends = {list(depends)!r}\n".replace("'", '"'))


@pytest.fixture
def root(tmp_path):
    root = write_project(tmp_path / "p")
    write_recipe(root, "wf-off", _recipe("wf-off", disabled=REASON))
    write_recipe(root, "wf-user", _recipe("wf-user", depends=("wf-mid",)))
    write_recipe(root, "wf-mid", _recipe("wf-mid", depends=("wf-off",)))
    (root / "dist").mkdir()
    (root / "dist" / "keep.txt").write_text("untouched")
    return root


def _build(root, argv, capsys) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        cli.run(build_cli.build_command, [*argv, "--target", "host"], root=root)
        raise SystemExit(0)
    return e.value.code, " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("argv", [["wf-off"], ["WF_Off"]])  # build-NAME / build -- NAME, any spelling
def test_a_disabled_recipe_asked_for_by_name_is_an_error(root, capsys, argv):
    before = tree_snapshot(root / "dist")
    code, err = _build(root, argv, capsys)
    assert code == 1
    path = root / "recipes" / "wf-off" / "recipe.toml"
    assert (f"wf-off is disabled ({REASON}), so it is not built when asked for by name; "
            f"to build it, remove package.disabled from {path}") in err, err
    assert "Traceback" not in err and tree_snapshot(root / "dist") == before
    assert not (root / "logs").exists()  # refused before anything ran


def test_a_disabled_dependency_of_a_named_recipe_is_an_error_naming_the_link(root, capsys):
    code, err = _build(root, ["wf-user"], capsys)
    assert code == 1
    assert (f"wf-user needs wf-off (through wf-mid), which is disabled ({REASON}); remove package.disabled from "
            f"{root / 'recipes' / 'wf-off' / 'recipe.toml'}, or drop 'wf-off' from build.depends/runtime.depends in "
            f"{root / 'recipes' / 'wf-mid' / 'recipe.toml'}") in err, err


def test_build_all_skips_a_disabled_recipe_and_its_dependents(tmp_path, capfd):
    root = write_project(tmp_path / "p")
    write_recipe(root, "wf-off", _recipe("wf-off", disabled=REASON))
    write_recipe(root, "wf-needs-off", _recipe("wf-needs-off", depends=("wf-off",)))
    capfd.readouterr()
    with pytest.raises(SystemExit) as e:
        cli.run(build_cli.build_command, ["--all", "--target", "host"], root=root)
        raise SystemExit(0)
    out = " ".join("".join(capfd.readouterr()).split())
    assert e.value.code == 0
    assert f"wf-off: disabled — {REASON}" in out and "needs wf-off, which is disabled" in out
