"""Which clean stage the clean system takes instead of running mmdebstrap (``CleanSystem._usable_seed``).

The stage a build rootfs leaves (``Rootfs._keep_seed``) is a shortcut only while it is what
mmdebstrap would make for the clean system's settings today; any other is removed and the
clean system is made afresh. Real folders and stamps, no mmdebstrap needed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import write_project
from wheelfactory.runners.clean import CleanSystem
from wheelfactory.runners.rootfs import SEED, Rootfs
from wheelfactory.settings.factory import load_config


def _clean(tmp_path: Path) -> CleanSystem:
    root = write_project(tmp_path / "p", host_target=False,
                         config=f'[target]\npythons = ["3.13"]\n[paths]\ncache = "{tmp_path / "cache"}"\n')
    return CleanSystem(load_config(root))


def _seed(clean: CleanSystem, *, pythons=("3.13",), **changes) -> Path:
    seed = clean.seed_path
    seed.mkdir(parents=True)
    for v in pythons:
        for f in CleanSystem.python_files(v):
            (seed / f).parent.mkdir(parents=True, exist_ok=True)
            (seed / f).write_text("")
    facts = {"made_at": time.time(), "arch": clean.arch, "suite": clean.suite, "mirror": clean.mirror,
             "variant": clean.variant, "slim": clean.slim, "apt_options": clean.apt_options,
             "stage_seconds": 100.0, "suite_pythons": ["3.13", "3.14"], **changes}
    (seed / SEED).write_text(json.dumps(facts))
    return seed


def test_the_build_rootfs_and_its_clean_system_agree_on_where_the_stage_goes(tmp_path):
    clean = _clean(tmp_path)
    build = Rootfs(clean.config)
    assert clean.seed_path == build.seed_path == clean.parent / f".{clean.name}.seed"
    assert clean.path == build.path.with_name(f"{build.name}-clean")
    assert build.makes_clean_stage and not clean.makes_clean_stage


def test_a_fresh_matching_stage_is_taken(tmp_path):
    clean = _clean(tmp_path)
    _seed(clean)
    seed = clean._usable_seed()
    assert seed is not None and seed["stage_seconds"] == 100.0
    assert clean.seed_path.is_dir(), "taken by the creation, not by the check"


@pytest.mark.parametrize("changes, why", [
    ({"mirror": "http://snapshot.debian.org/archive/debian/20260101T000000Z"}, "another mirror"),
    ({"suite": "forky"}, "another suite"),
    ({"slim": False}, "another slim"),
    ({"apt_options": []}, "another apt_options"),
    ({"made_at": 0.0}, " h old"),
    ({"pythons": ()}, "lacks Python 3.13"),
])
def test_a_stage_made_otherwise_is_removed_and_says_why(tmp_path, capsys, changes, why):
    clean = _clean(tmp_path)
    clean.apt_options = ["Acquire::Check-Valid-Until=false"]
    pythons = changes.pop("pythons", ("3.13",))
    _seed(clean, pythons=pythons, **{"apt_options": clean.apt_options, **changes})
    assert clean._usable_seed() is None
    assert not clean.seed_path.exists()
    assert why in capsys.readouterr().err


def test_a_half_written_stage_is_never_trusted(tmp_path):
    clean = _clean(tmp_path)
    _seed(clean)
    (clean.seed_path / SEED).write_text('{"made_at": ')
    assert clean._usable_seed() is None and not clean.seed_path.exists()
