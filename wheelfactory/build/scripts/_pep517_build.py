"""Build one wheel with the `build` library. Runs INSIDE the runner, with the
tools venv's Python (a venv of the target interpreter), so it works the same
natively, in an emulated riscv64 rootfs or in a container.

Usage: python _pep517_build.py REQUEST.json   (writes the result to REQUEST.json's "result" path)

Request fields: srcdir, outdir, isolation (bool), requires (extra build
requirements), install (local wheels to install first), config_settings,
installer ("uv" | "pip"), python (interpreter for a non-isolated build), result.

Standalone on purpose: it imports nothing from wheelfactory.
"""

import json
import sys

from build import BuildBackendException, ProjectBuilder
from build.env import DefaultIsolatedEnv


def main(request_path: str) -> int:
    with open(request_path) as f:
        req = json.load(f)
    settings = req["config_settings"] or None
    extra = list(req["install"]) + list(req["requires"])
    result = {"wheel": None, "missing": []}
    if req["isolation"]:
        with DefaultIsolatedEnv(installer=req["installer"]) as env:
            builder = ProjectBuilder.from_isolated_env(env, req["srcdir"])
            # Local dependency wheels and the recipe's extra requirements go in
            # together with the declared ones, so the resolver sees them all.
            env.install(sorted(builder.build_system_requires) + extra)
            more = builder.get_requires_for_build("wheel", settings)
            if more:
                env.install(sorted(more) + extra)
            print(f"[wheelfactory] build environment: {env.path}", flush=True)
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


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1]))
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
