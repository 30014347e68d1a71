"""GitHub's limits, as the stand-in enforces them (tests/fakes/github_releases.py): asset names,
Content-Length, 1000 assets and 2 GiB per release asset, immutable releases, primary and
secondary rate limits, write spacing, HEAD refused on the download host, Pages deploy delay."""

from __future__ import annotations

import requests
import pytest
from fakes.github_releases import FakeGitHub, github_asset_name
from support.github_pages import REPOSITORY, TAG, add, gh, make_project  # noqa: F401

from wheelfactory._util.github import PACING_ENV, GitHubError, Releases
from wheelfactory.errors import FactoryError
from wheelfactory.publish import publish
from wheelfactory.publish.github import releases
from wheelfactory.settings.factory import load_config


def uploads(gh: FakeGitHub) -> list[tuple]:
    return [e for e in gh.log if e[0] == "uploads"]


@pytest.mark.parametrize("given, stored", [
    ("numpy-2.0+cu121-cp311-cp311-linux_riscv64.whl", "numpy-2.0+cu121-cp311-cp311-linux_riscv64.whl"),
    ("a@b.txt", "a@b.txt"),
    ("my file (1).deb", "my.file.1.deb"),
    ("pkg_1.0~beta.deb", "pkg_1.0.beta.deb"),
    (".hidden..name.", "hidden.name"),
])
def test_stand_in_renames_as_github(given, stored):
    assert github_asset_name(given) == stored


def test_upload_without_content_length_is_refused(tmp_path, gh):  # noqa: F811
    rel = gh.put_asset(REPOSITORY, TAG, "x.txt", b"x") and gh.release(REPOSITORY, TAG)
    url = rel["upload_url"].split("{")[0]
    r = requests.post(url, params={"name": "y.txt"}, data=iter([b"chunked"]),
                      headers={"Authorization": f"Bearer {gh.token}", "Content-Type": "text/plain"})
    assert r.status_code == 411 and "y.txt" not in gh.assets(REPOSITORY, TAG)


def test_download_host_refuses_head_but_serves_get_and_ranges(tmp_path, gh):  # noqa: F811
    a = gh.put_asset(REPOSITORY, TAG, "x.bin", b"0123456789")
    assert requests.head(a["browser_download_url"], allow_redirects=True).status_code == 403
    r = requests.get(a["browser_download_url"], headers={"Range": "bytes=0-0"})
    assert r.status_code == 206 and r.headers["Content-Range"] == "bytes 0-0/10"
    assert requests.get(a["browser_download_url"]).content == b"0123456789"


def test_a_422_says_what_github_said(tmp_path, real_wheels, monkeypatch):
    with FakeGitHub(repositories=[REPOSITORY], max_assets=1) as gh:
        gh.put_asset(REPOSITORY, TAG, "first.txt", b"1")
        root = make_project(tmp_path, gh, pages=False)
        client = releases(load_config(root).publish, gh.token, command="test")
        with pytest.raises(GitHubError) as e:
            client.upload_asset(client.release_by_tag(TAG), "second.txt", b"2", "text/plain")
    assert "422" in str(e.value) and "ReleaseAsset file_count: A release may hold at most 1 assets" in str(e.value)


@pytest.mark.parametrize("present, refused", [(997, False), (998, True)])
def test_the_1000_assets_are_counted_before_uploading(tmp_path, gh, real_wheels, monkeypatch,  # noqa: F811
                                                      present, refused):
    """jinja2 makes 3 assets (wheel, .metadata, record): 997 + 3 fit, 998 + 3 do not."""
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    for i in range(present):
        gh.put_asset(REPOSITORY, TAG, f"other-{i}.txt", b"")
    root = make_project(tmp_path, gh)
    add(root, real_wheels, "jinja2")
    if refused:
        with pytest.raises(FactoryError, match=r"would hold 1001 assets \(998 now, 3 new\), over GitHub's limit"):
            publish(load_config(root))
        assert uploads(gh) == []
    else:
        assert len(publish(load_config(root)).uploaded) == 2
        assert len(gh.assets(REPOSITORY, TAG)) == 1000


def test_an_immutable_release_is_refused_before_anything_changes(tmp_path, real_wheels, monkeypatch):
    monkeypatch.setenv(PACING_ENV, "write_interval=0")
    with FakeGitHub(repositories=[REPOSITORY], immutable=True) as gh:
        monkeypatch.setenv("GITHUB_TOKEN", gh.token)
        gh.put_asset(REPOSITORY, TAG, "notes.txt", b"")  # published while the setting was on: locked
        root = make_project(tmp_path, gh)
        add(root, real_wheels, "jinja2")
        with pytest.raises(FactoryError, match="release wheels of octo/wheels is immutable .* turn the setting off"):
            publish(load_config(root))
        assert uploads(gh) == []
        r = requests.delete(gh.assets(REPOSITORY, TAG)["notes.txt"]["url"],
                            headers={"Authorization": f"Bearer {gh.token}"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "immutable"


def test_secondary_limits_are_waited_out(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    """403 with Retry-After: the same request again after that many seconds; 429 with GitHub's
    message and no Retry-After: after the client's default wait."""
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    add(root, real_wheels, "jinja2")
    f403 = gh.inject("secondary", host="uploads", seconds=1, after=1)
    f429 = gh.inject("secondary-429", host="api", method="GET", path=r"/releases/tags/")
    report = publish(load_config(root))
    assert f403.hits == 1 and f429.hits == 1 and len(report.uploaded) == 2
    refused = next(i for i, e in enumerate(gh.log) if e[0] == "uploads" and e[3] == 403)
    again = next(i for i, e in enumerate(gh.log) if i > refused and e[0] == "uploads")
    assert gh.log[again][2] == gh.log[refused][2] and gh.log[again][3] == 201
    assert gh.log_times[again] - gh.log_times[refused] >= 1.0  # Retry-After: 1


def test_primary_limit_waits_for_a_near_reset_else_says_when(tmp_path, real_wheels, monkeypatch):
    monkeypatch.setenv(PACING_ENV, "write_interval=0,reset_wait=5")
    with FakeGitHub(repositories=[REPOSITORY], rate_limit=4, rate_window=2, deploy_delay=0.2) as gh:
        monkeypatch.setenv("GITHUB_TOKEN", gh.token)
        root = make_project(tmp_path, gh)
        add(root, real_wheels, "jinja2")
        report = publish(load_config(root))  # 7 requests in windows of 4: waits for the resets
        assert len(report.uploaded) == 2
        assert not [e for e in gh.log if e[3] == 403]  # it waited instead of running into the limit
    with FakeGitHub(repositories=[REPOSITORY], rate_limit=2, rate_window=3600) as gh:
        client = Releases(gh.api_url, REPOSITORY, gh.token, again="re-run")
        client.release_by_tag(TAG)
        client.release_by_tag(TAG)
        with pytest.raises(GitHubError, match=r"rate limit exhausted \(2 requests per hour\).* resets at 20"):
            client.release_by_tag(TAG)
        assert len(gh.log) == 2  # the third was not even sent


def test_writes_are_spaced(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    monkeypatch.setenv(PACING_ENV, "write_interval=0.3")
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    add(root, real_wheels, "jinja2")
    publish(load_config(root))
    gaps = [b - a for a, b in zip(gh.write_times, gh.write_times[1:])]
    assert len(gaps) >= 3 and min(gaps) >= 0.29


def test_a_deployment_that_never_comes_is_one_message_and_nothing_is_pruned(tmp_path, real_wheels,
                                                                              monkeypatch):
    monkeypatch.setenv(PACING_ENV, "write_interval=0")
    with FakeGitHub(repositories=[REPOSITORY], deploy_delay=3600) as gh:
        monkeypatch.setenv("GITHUB_TOKEN", gh.token)
        root = make_project(tmp_path, gh, extra="deploy-timeout = 2\nprune-grace = 0")
        gh.put_asset(REPOSITORY, TAG, "gone-1.0-py3-none-any.whl", b"old")  # not linked: would be pruned
        add(root, real_wheels, "jinja2")
        with pytest.raises(FactoryError, match=r"still did not serve it after 2 s \(publish.deploy-timeout; "
                                               r"last answer: HTTP 404\).*nothing was pruned"):
            publish(load_config(root))
        assert "gone-1.0-py3-none-any.whl" in gh.assets(REPOSITORY, TAG)


def test_publish_waits_for_the_index_own_digest_and_its_marker_keeps_only_unlinked_times(tmp_path, gh, real_wheels,  # noqa: F811
                                                                                         monkeypatch):
    """One digest: publish waits until the live site serves the index's own index-digest.json (the
    digest `invoke index` wrote), and its marker on the Pages branch keeps only what is publish's own
    (since when each asset is unlinked)."""
    import json
    from support.github_pages import live_pages
    from wheelfactory.index import DIGEST
    from wheelfactory.publish.github import MARKER

    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh, extra="deploy-timeout = 2")
    add(root, real_wheels, "jinja2")
    publish(load_config(root))
    live = live_pages(tmp_path)
    assert (live / DIGEST).read_bytes() == (root / "index" / DIGEST).read_bytes()
    assert set(json.loads((live / MARKER).read_text())) == {"unlinked"}

    # A deployment that never comes: the wait names the index's digest file, not a marker of its own.
    gh.deploy_delay = 3600
    add(root, real_wheels, "markupsafe")
    with pytest.raises(FactoryError, match=rf"{DIGEST} still did not serve it"):
        publish(load_config(root))


def test_one_release_per_project_and_the_1000_assets_are_counted_per_release(tmp_path, gh, real_wheels,  # noqa: F811
                                                                             monkeypatch):
    """publish.release-tag and index.files-base-url with {project}: each project's files go to its own
    release, the index links each file there, and GitHub's 1000 assets are counted per release (old and
    new together, before anything is uploaded), so the catalog as a whole is not bounded by them."""
    from support.github_pages import assert_live_consistent

    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh, tag="wheels-{project}")
    add(root, real_wheels, "jinja2")
    publish(load_config(root))
    j, m = real_wheels["jinja2"].name, real_wheels["markupsafe"].name
    assert set(gh.assets(REPOSITORY, "wheels-jinja2")) == {j, f"{j}.metadata", f"{j}.json"}
    for i in range(994):  # jinja2's release: 997 assets
        gh.put_asset(REPOSITORY, "wheels-jinja2", f"other-{i}.txt", b"x")
    for i in range(997):  # markupsafe's release exists with 997 assets already
        gh.put_asset(REPOSITORY, "wheels-markupsafe", f"other-{i}.txt", b"x")

    add(root, real_wheels, "markupsafe")  # 4 files (wheel, .metadata, .log, record): 1001 on its release
    with pytest.raises(FactoryError, match=r"release wheels-markupsafe would hold 1001 assets \(997 now, 4 new\)"):
        publish(load_config(root))
    assert m not in gh.assets(REPOSITORY, "wheels-markupsafe") and len(gh.assets(REPOSITORY, "wheels-jinja2")) == 997

    with gh.lock:  # room for them: 993 + 4 on markupsafe's release, 997 on jinja2's, 1994 in all
        rel = gh.release(REPOSITORY, "wheels-markupsafe")
        for asset_id in [k for k, a in rel["_assets"].items() if a["name"].startswith("other-")][:4]:
            del rel["_assets"][asset_id]
    report = publish(load_config(root))
    assert m in report.uploaded and len(gh.assets(REPOSITORY, "wheels-markupsafe")) == 997
    assert {m, f"{m}.metadata", f"{m}.log", f"{m}.json"} <= set(gh.assets(REPOSITORY, "wheels-markupsafe"))
    assert not any(n.startswith("MarkupSafe") for n in gh.assets(REPOSITORY, "wheels-jinja2"))
    live = assert_live_consistent(tmp_path)  # every link (on two releases) resolves, hashes match
    links = (live / "simple" / "markupsafe" / "index.json").read_text()
    assert "/releases/download/wheels-markupsafe/" in links and "{project}" not in links

    # The releases are found by listing them (a request per 100, not one per project), including the
    # release of a project that left dist/: its files are unlinked, pruned after the grace period.
    looked_up = len(gh.log)
    for suffix in ("", ".json"):
        (root / "dist" / f"{j}{suffix}").unlink()
    report = publish(load_config(root))
    assert sorted(report.prune_later) == sorted([j, f"{j}.metadata", f"{j}.json"])
    assert not [e for e in gh.log[looked_up:] if "/releases/tags/" in str(e)]


def test_check_index_sees_the_deployed_site_not_the_cdn_copy(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    """Pages' CDN keeps a page for max-age=600 and ignores a client's no-cache; CI's check-index runs
    right after publish, so it must fetch past that cache or it checks the site of a publish ago."""
    from wheelfactory.index.check import check_index

    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    add(root, real_wheels, "jinja2")
    publish(load_config(root))
    live = load_config(root).index.url
    assert requests.get(live, timeout=10).ok  # a client's visit: the CDN now holds the one-project root page
    add(root, real_wheels, "markupsafe")
    publish(load_config(root))
    assert "markupsafe" not in requests.get(live, timeout=10).text  # what a plain GET still gets
    result = check_index(live)
    assert result.problems == [] and result.projects == 2, (result.projects, result.problems)
