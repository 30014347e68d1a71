"""Build one wheel with the `build` library. Runs INSIDE the runner, with the
tools venv's Python (a venv of the target interpreter), so it works the same
natively, in an emulated riscv64 rootfs or in a container.

Usage: python _pep517_build.py [prepare|build] REQUEST.json   (writes the result to REQUEST.json's "result" path)

Two steps, so that the backend's build can run with the network cut off while
installing the build requirements still reaches the index:

* ``prepare`` (isolated builds only; network on): creates the isolated
  environment in the request's ``envdir`` (kept), installs the declared build
  requirements, the recipe's extra ones and the dependency wheels, asks the
  backend for more (``get_requires_for_build_wheel``) and installs them; writes
  the environment's interpreter and extra environment to ``result``.
* ``build`` (network off): calls the backend's ``build_wheel`` in the prepared
  environment (isolated) or in the build venv the pipeline made (not isolated);
  writes the wheel's path to ``result``.

Request fields: srcdir, outdir, isolation (bool), requires (extra build
requirements), install (local wheels to install first), config_settings,
installer ("uv" | "pip"), python (interpreter for a non-isolated build),
envdir (the isolated environment's parent folder), env (prepare's result, for
build), result.

Standalone on purpose: it imports nothing from wheelfactory.
"""

import json
import subprocess
import sys
import tempfile

from build import BuildBackendException, ProjectBuilder
from build.env import DefaultIsolatedEnv
from pyproject_hooks import default_subprocess_runner


def main(step: str, request_path: str) -> int:
    with open(request_path) as f:
        req = json.load(f)
    settings = req["config_settings"] or None
    extra = list(req["install"]) + list(req["requires"])
    result = {"wheel": None, "missing": []}
    if step == "prepare":
        # Kept after this process ends (no __exit__): the build step uses it.
        tempfile.tempdir = req["envdir"]
        env = DefaultIsolatedEnv(installer=req["installer"]).__enter__()
        builder = ProjectBuilder.from_isolated_env(env, req["srcdir"])
        # Local dependency wheels and the recipe's extra requirements go in
        # together with the declared ones, so the resolver sees them all.
        _install(env, sorted(builder.build_system_requires) + extra)
        more = builder.get_requires_for_build("wheel", settings)
        if more:
            _install(env, sorted(more) + extra)
        print(f"[wheelfactory] build environment: {env.path}", flush=True)
        result["env"] = {"python": env.python_executable, "environ": dict(env.make_extra_environ() or {})}
    elif req["isolation"]:
        prepared = req["env"]

        def runner(cmd, cwd=None, extra_environ=None):
            default_subprocess_runner(cmd, cwd, {**(extra_environ or {}), **prepared["environ"]})

        builder = ProjectBuilder(req["srcdir"], python_executable=prepared["python"], runner=runner)
        result["wheel"] = builder.build("wheel", req["outdir"], settings)
    else:
        # A non-isolated build runs in the build venv the pipeline prepared
        # (recipe requires + dependency wheels); nothing is installed here.
        builder = ProjectBuilder(req["srcdir"], python_executable=req["python"])
        missing = builder.check_dependencies("wheel", settings)
        result["missing"] = sorted(" -> ".join(chain) for chain in missing)
        for m in result["missing"]:
            print(f"[wheelfactory] warning: build requirement not installed: {m}", flush=True)
        result["wheel"] = builder.build("wheel", req["outdir"], settings)
    with open(req["result"], "w") as f:
        json.dump(result, f)
    return 0


REQUIREMENTS_FAILED = "[wheelfactory] installing the build requirements failed:"


def _install(env, reqs):
    """``env.install``, saying which requirements failed and what the installer said: build keeps
    its captured output to itself (a CalledProcessError names only the command)."""
    try:
        env.install(reqs)
    except subprocess.CalledProcessError as e:
        print(f"{REQUIREMENTS_FAILED} {json.dumps(reqs)}", flush=True)
        for out in (e.stdout, e.stderr):
            if out:
                print(out.decode(errors="replace") if isinstance(out, bytes) else out, flush=True)
        sys.exit(5)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1], sys.argv[2]))
    except BuildBackendException as e:
        # The backend's own traceback (e.g. "No module named 'expandvars'" when the
        # backend cannot even be imported) says more than build's summary.
        inner = getattr(e.exception, "traceback", None)
        if inner:
            print(inner, file=sys.stderr, flush=True)
        print(f"[wheelfactory] build backend failed: {e}", file=sys.stderr, flush=True)
        sys.exit(3)
    except Exception as e:  # build.BuildException and friends: one line, the log has the rest
        print(f"[wheelfactory] build failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(4)
