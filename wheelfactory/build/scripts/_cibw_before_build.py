"""cibuildwheel's before-build for recipes that need more than the project declares.

Runs INSIDE the manylinux container, with the Python of the wheel being built
(cibuildwheel puts that build environment's python and pip first on PATH), in
the copied project folder. cibuildwheel then builds with ``--no-isolation``, so
this installs what an isolated build environment would have held:

* isolation on in the recipe: the project's build-system requirements, the
  backend's dynamic ones (``get_requires_for_build_wheel``), plus the recipe's
  extra requirements (e.g. expandvars) and dependency wheels — the same as
  the native pipeline's _pep517_build.py;
* isolation off: exactly the recipe's requirements and dependency wheels.

Usage: python _cibw_before_build.py REQUEST.json PACKAGE_DIR
Standalone on purpose: the container has no wheelfactory.
"""

import importlib
import json
import os
import subprocess
import sys


def pip_install(reqs):
    if reqs:
        cmd = [sys.executable, "-m", "pip", "install", "--no-input", "--prefer-binary", *reqs]
        print("[wheelfactory] " + " ".join(cmd), flush=True)
        subprocess.check_call(cmd)


def main(request_path, package_dir):
    with open(request_path) as f:
        req = json.load(f)
    here = os.path.dirname(os.path.abspath(request_path))
    extra = list(req["requires"]) + [os.path.join(here, w) for w in req["install"]]
    if not req["isolation"]:
        pip_install(extra)
        return 0
    try:
        from build import ProjectBuilder
    except ImportError:
        pip_install(["build>=1.2"])
        importlib.invalidate_caches()
        from build import ProjectBuilder
    builder = ProjectBuilder(package_dir)
    pip_install(sorted(builder.build_system_requires) + extra)
    more = builder.get_requires_for_build("wheel", req["config_settings"] or None)
    pip_install(sorted(more) + extra if more else [])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
