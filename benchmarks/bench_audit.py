"""Benchmark: `invoke audit vllm` against `uv pip compile` alone on the same input.

Targets (issue "find what is missing"):
  cold audit (empty cache/, empty uv cache) <= 1.5 x a cold `uv pip compile --universal`
  warm audit (cache/ filled)                <= 0.2 x that same uv time

Each is measured once, as whole processes (interpreter and invoke start-up
included), in a throwaway project root aimed at the repository's target. Exit status 1 when a
target is missed.

    python benchmarks/bench_audit.py [REQUIREMENT ...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from wheelfactory.audit.report import EXIT_MISSING  # noqa: E402
from wheelfactory.audit.resolve import uv_binary  # noqa: E402
from wheelfactory.settings.factory import load_config  # noqa: E402

COLD_MAX, WARM_MAX = 1.5, 0.2


def timed(argv: list[str], env: dict[str, str], stdin: str | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    r = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True)
    return time.monotonic() - start, r


def main(requirements: list[str]) -> int:
    requirements = requirements or ["vllm"]
    repo_config = load_config(REPO)
    with tempfile.TemporaryDirectory(prefix="wf-bench-audit-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        (root / "factory.toml").write_text(
            f'[target]\narch = "{repo_config.arch}"\npolicy = "{repo_config.policy}"\n'
            f"pythons = {json.dumps(repo_config.pythons)}\n"
            f'[audit]\npypi-url = "{repo_config.audit.pypi_url}"\n')
        (root / "recipes").mkdir()
        base_env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "WHEELFACTORY_ROOT": str(root)}

        # uv alone: the same resolve the audit runs, from an empty uv cache.
        uv_env = {**base_env, "UV_CACHE_DIR": str(Path(tmp) / "uv-cache-compile")}
        argv = [uv_binary(), "pip", "compile", "-", "--universal", "--python-version",
                min(repo_config.pythons, key=lambda v: tuple(map(int, v.split(".")))), "--no-config",
                "--no-header", "--index-url", repo_config.audit.pypi_url, "-q"]
        t_uv, r = timed(argv, uv_env, stdin="\n".join(requirements) + "\n")
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        pins = sum(1 for line in r.stdout.splitlines() if "==" in line)

        # The audit, cold (empty cache/ and uv cache), then warm.
        audit_env = {**base_env, "UV_CACHE_DIR": str(Path(tmp) / "uv-cache-audit")}
        # The user's command: `invoke audit "REQ …" --json`, aimed at the throwaway root.
        cmd = [sys.executable, "-m", "invoke", "-r", str(REPO), "audit", " ".join(requirements), "--json"]
        t_cold, cold = timed(cmd, audit_env)
        t_warm, warm = timed(cmd, audit_env)
        for r in (cold, warm):
            if r.returncode not in (0, EXIT_MISSING):
                print(r.stderr, file=sys.stderr)
                return 1
        doc = json.loads(warm.stdout)

    cold_ratio, warm_ratio = t_cold / t_uv, t_warm / t_uv
    print(f"input: {' '.join(requirements)}  ({pins} pins from uv, {doc['summary']['total']} packages on "
          f"{repo_config.arch}, {len(set(doc['needs_recipe']))} need a recipe)")
    print(f"uv pip compile --universal (cold uv cache)  {t_uv:7.2f}s")
    print(f"audit, cold (empty caches)                  {t_cold:7.2f}s  = {cold_ratio:.2f} x uv   "
          f"(target <= {COLD_MAX}) {'OK' if cold_ratio <= COLD_MAX else 'MISSED'}")
    print(f"audit, warm (cache/ filled)                 {t_warm:7.2f}s  = {warm_ratio:.2f} x uv   "
          f"(target <= {WARM_MAX}) {'OK' if warm_ratio <= WARM_MAX else 'MISSED'}")
    return 0 if cold_ratio <= COLD_MAX and warm_ratio <= WARM_MAX else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
