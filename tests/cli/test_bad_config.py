"""Bad factory.toml and bad requirements files, as a user meets them (`invoke index`, `invoke audit -r`):
exit 1, exactly one error line, no traceback, the file and key named, the fix named, and
dist/ and index/ byte-for-byte unchanged. (Bad recipes: tests/build/bad_recipes/;
damaged dist records: test_damaged_records.py.)
"""

from __future__ import annotations

import pytest
from support.build import tree_snapshot
from support.cli import one_error, run_invoke
from support.wheels import store_wheel

# factory.toml text -> (the key or place named, the fix named)
CONFIGS = {
    "not-toml": ('[index\nurl = "x"\n', "not valid TOML: Expected ']'", "fix the syntax there"),
    "unknown-section": ('[idnex]\nurl = "x"\n', "unknown section [idnex]", "did you mean 'index'"),
    "bad-choice": ('[publish]\ntarget = "s3"\n', "publish.target 's3' is not one of: directory, github",
                   "set it to one of them"),
    "wrong-type": ("[paths]\ndist = 5\n", "'paths.dist' must be a string", "got int 5"),
    "python-version": ('[target]\npythons = ["3.12", "3.x"]\n', "'target.pythons' has '3.x', which is not a CPython "
                       "version X.Y", 'write e.g. ["3.11", "3.12", "3.13"]'),
    "container-engine": ('[container]\nengine = "rocket"\n', "[container].engine must be docker or podman, not "
                         "'rocket'", "set it to one of them, or leave it empty"),
    "yank-key": ('[index]\nyanked = { "numpy" = "broken" }\n', "index.yanked key 'numpy'",
                 'fix: write e.g. "numpy==2.2.0"'),
    "yank-version": ('[index]\nyanked = { "numpy==x.y" = "broken" }\n', "'x.y' is not a version",
                     "fix: write NAME==VERSION"),
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, real_wheels):
    root = tmp_path_factory.mktemp("cfg") / "p"
    (root / "recipes").mkdir(parents=True)
    (root / "factory.toml").write_text("")
    store_wheel(root / "dist", real_wheels["jinja2"])
    r = run_invoke(root, "index")
    assert r.returncode == 0, r.stderr
    return root


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_a_bad_factory_toml_is_named_with_its_fix(case, indexed):
    text, what, fix = CONFIGS[case]
    config = indexed / "factory.toml"
    before = {d: tree_snapshot(indexed / d) for d in ("dist", "index")}
    config.write_text(text)
    try:
        line = one_error(run_invoke(indexed, "index"))
    finally:
        config.write_text("")
    assert line.startswith(f"error: {config}: ") and what in line and fix in line, line
    assert {d: tree_snapshot(indexed / d) for d in ("dist", "index")} == before


@pytest.mark.parametrize("content, what, fix", [
    (None, "requirements file {path} does not exist", "check the path given to -r"),
    ("six\nnumpy==\n", "{path}:2: 'numpy==' is not a valid requirement", 'write a PEP 508 requirement, e.g. "numpy>=2"'),
    ("-r\n", "{path}:1: -r needs a file name", "write '-r FILE'"),
], ids=["missing", "bad-line", "bare-option"])
def test_a_bad_requirements_file_is_named_with_its_fix(content, what, fix, indexed, tmp_path):
    path = tmp_path / "requirements.txt"
    if content is not None:
        path.write_text(content)
    line = one_error(run_invoke(indexed, "audit", "-r", str(path)))
    assert what.format(path=path) in line and fix in line, line
