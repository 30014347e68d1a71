"""The dist record of a wheel and the build key: the bytes that decide whether anything rebuilds.

``build_key`` hashes everything that decides a build's output; a wheel whose
key is in dist/ already is not built again. ``make_record`` writes the fields
every strategy stores beside a wheel (their meaning: build/store.py). Both
must stay byte-for-byte what they were: a changed key rebuilds every wheel,
and tests/unit/test_build_record.py compares them with values taken before the
layout change.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Iterable

from packaging.metadata import parse_email
from packaging.utils import parse_wheel_filename

from .. import BUILD_LOGIC_VERSION
from .._util.fs import sha256_file
from ..errors import FactoryError
from ..settings.factory import Config
from ..settings.recipe import Recipe


def build_key(*, recipe_fingerprint: str, source_id: str, python: str, target: str, policy: str,
              dependencies: Iterable[str] = ()) -> str:
    """The content key (64 hex digits): everything that decides the output, hashed.

    ``recipe_fingerprint``: ``Recipe.fingerprint`` (recipe content and patches);
    ``source_id``: ``source.source_id`` (``sha256:…`` or ``git:<commit>``);
    ``python``: ``X.Y``; ``target``: the arch; ``policy``: ``manylinux_X_Y`` or
    ``best`` as asked for (not as reached); ``dependencies``: the sha256s of
    the recipe wheels installed into the build (order does not matter), so a
    dependency's rebuild changes its dependents' keys.
    """
    payload = json.dumps(
        {
            "logic": BUILD_LOGIC_VERSION,
            "recipe": recipe_fingerprint,
            "source": source_id,
            "python": python,
            "target": target,
            "policy": policy,
            "dependencies": sorted(dependencies),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def make_record(config: Config, recipe: Recipe, wheel: Path, *, build_key: str, python: str, policy: str,
                achieved: str, source: dict, patches: list[str], auditwheel: str, host: dict, duration: float,
                stages: dict, log: str | None, notes: list[str], **extra) -> dict:
    """The dist record of a verified ``wheel`` (a dict; store.store_wheel adds schema, filename, built_at).

    ``duration`` in seconds (rounded to ms); ``stages``: stage -> seconds;
    ``log``: the attempt log relative to the project root; ``extra`` fields
    (e.g. ``compiler_cache``) go before ``yanked``. Raises FactoryError when
    the wheel holds no single ``.dist-info/METADATA``.
    """
    metadata = wheel_metadata(wheel)
    raw_meta, _ = parse_email(metadata)
    wname, wversion, build_tag, wtags = parse_wheel_filename(wheel.name)
    return {
        "name": str(wname),
        "version": str(wversion),
        "build_tag": build_tag[0] if build_tag else None,
        "sha256": sha256_file(wheel),
        "size": wheel.stat().st_size,
        "tags": sorted(str(t) for t in wtags),
        "requires_python": raw_meta.get("requires_python"),
        "metadata": metadata,
        "metadata_sha256": hashlib.sha256(metadata.encode("utf-8")).hexdigest(),
        "build_key": build_key,
        "python": python,
        "target": config.arch,
        "policy": policy,
        "achieved_policy": achieved,
        "recipe": recipe.name,
        "source": source,
        "patches": patches,
        "debian_runtime": list(recipe.runtime.debian),
        "auditwheel": auditwheel,
        "host": host,
        "duration": round(duration, 3),
        "stages": stages,
        "status": "ok",
        "log": log,
        "notes": notes,
        **extra,
        "yanked": None,
    }


def wheel_metadata(wheel: Path) -> str:
    """The core metadata text of ``wheel`` (its one top-level ``*.dist-info/METADATA``, UTF-8)."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            raise FactoryError(f"{wheel.name}: expected one .dist-info/METADATA, found {len(names)}")
        return zf.read(names[0]).decode("utf-8")
