#!/usr/bin/env python3
"""GitHub REST API requests spent by `invoke publish` and `invoke fetch-dist`, counted on the
GitHub stand-in (tests/fakes/github_releases.py: GitHub's wire format, limits and Pages, on 127.0.0.1).

    python benchmarks/bench_publish_api.py [--wheels 250] [--dir DIR]

A catalog of WHEELS small real wheels (one per project: wheel, .metadata and dist record = 3
assets each) is published to a release; then

* one new wheel is added and published: the API and upload requests of that publish
  (target: at most 10);
* a CI job with an empty dist/ restores the catalog with fetch-dist, without a token:
  its API requests (target: at most 5), beside what the same restore costs through the
  release API (list the assets, download every record and wheel through the API: the
  way fetch-dist worked before), and the ratio.

Counting requests needs no timing, so one run is exact. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fakes.github_releases import FakeGitHub  # noqa: E402
from support.wheels import store_wheel  # noqa: E402

from wheelfactory._util.github import PACING_ENV, GitHubError  # noqa: E402
from wheelfactory.publish import publish  # noqa: E402
from wheelfactory.publish.fetch import fetch_dist  # noqa: E402
from wheelfactory.publish.github import releases  # noqa: E402
from wheelfactory.settings.factory import load_config  # noqa: E402

REPOSITORY, TAG = "octo/wheels", "wheels"


def make_wheel(out: Path, name: str) -> Path:
    """A small pure wheel of project ``name`` 1.0 (METADATA, WHEEL, RECORD, one module)."""
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": b"VALUE = 1\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    path = out / f"{name}-1.0-py3-none-any.whl"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, data in {**files, f"{info}/RECORD": record.encode()}.items():
            z.writestr(n, data)
    path.write_bytes(buf.getvalue())
    return path


def api_requests(gh: FakeGitHub, since: int) -> int:
    return sum(1 for host, *_ in gh.log[since:] if host in ("api", "uploads"))


def through_the_api(gh: FakeGitHub, config, token: str) -> tuple[int, str]:
    """The old fetch-dist: list the release's assets through the API, download each record and wheel
    through the API (``Accept: application/octet-stream``). Returns (API requests, how it ended)."""
    since = len(gh.log)
    client = releases(config.publish, token, command="bench")
    done = 0
    try:
        client.repository_info()
        for a in client.assets(client.release_by_tag(TAG)):
            if a["name"].endswith((".whl", ".whl.json")):
                client.download(a)
                done += a["name"].endswith(".whl")
    except GitHubError as e:
        return api_requests(gh, since), f"stopped after {done} wheels: {str(e).split(';')[0]}"
    return api_requests(gh, since), "complete"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", type=int, default=250)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--release-tag", default=TAG, help="publish.release-tag; 'wheels-{project}': one release "
                                                          "per project (the old API restore is then not measured)")
    args = ap.parse_args()
    tag = args.release_tag
    os.environ[PACING_ENV] = "write_interval=0"  # GitHub's 1 s between writes: counts do not depend on it
    work = Path(tempfile.mkdtemp(prefix="bench-publish-", dir=args.dir))
    try:
        with FakeGitHub(repositories=[REPOSITORY], public=[REPOSITORY], deploy_delay=0.2) as gh:
            os.environ["GITHUB_TOKEN"] = gh.token
            bare = work / "pages.git"
            subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
            gh.attach_pages(REPOSITORY, str(bare))
            root = work / "project"
            (root / "wheels").mkdir(parents=True)
            (root / "factory.toml").write_text(
                f'[index]\nurl = "{gh.pages_url}/simple/"\nfiles-base-url = "{gh.download_base(REPOSITORY, tag)}"\n'
                f'copy-logs = false\n[publish]\ntarget = "github"\napi-url = "{gh.api_url}"\n'
                f'repository = "{REPOSITORY}"\nrelease-tag = "{tag}"\npages-remote = "{bare.as_uri()}"\n'
                f'deploy-timeout = 60\n')
            for i in range(args.wheels):
                store_wheel(root / "dist", make_wheel(root / "wheels", f"bench_{i:04d}"))
            publish(load_config(root))  # the catalog

            store_wheel(root / "dist", make_wheel(root / "wheels", "bench_new"))
            since = len(gh.log)
            publish(load_config(root))
            one_new = api_requests(gh, since)

            shutil.rmtree(root / "dist")
            shutil.rmtree(root / "index")
            del os.environ["GITHUB_TOKEN"]  # a public repository: no token
            since = len(gh.log)
            restored = fetch_dist(load_config(root))
            fetch_api = api_requests(gh, since)
            public = sum(1 for host, *_ in gh.log[since:] if host in ("web", "pages"))
            per_project = "{project}" in tag
            old_anonymous = (0, "not measured") if per_project else through_the_api(gh, load_config(root), "")
            old_api = 0 if per_project else through_the_api(gh, load_config(root), gh.token)[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(restored.fetched)
    where = f"{args.wheels} projects, one release each" if "{project}" in tag else f"a {args.wheels}-wheel release"
    print(f"publish of one new wheel onto {where}: {one_new} API requests (target <= 10)")
    print(f"fetch-dist of {n} wheels, no token: {fetch_api} API requests (target <= 5); "
          f"{public} requests to Pages and the download host")
    if "{project}" not in tag:
        print(f"the same restore through the release API (fetch-dist before): {old_api} API requests; "
              f"now {fetch_api} (ratio {old_api}:{fetch_api})")
        print(f"  and without a token (60 requests an hour): {old_anonymous[1]}")
    ok = one_new <= 10 and fetch_api <= 5 and n == args.wheels + 1
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
