"""The emulated riscv64 runner: a real Debian riscv64 rootfs (mmdebstrap), QEMU user mode, real builds.

Needs root, binfmt_misc and qemu-user-static + mmdebstrap (`.ci/run` installs
them). They are NOT skipped when missing: the session fixture fails with the
runner's own message saying what to install.

One rootfs serves every test here: the session fixture makes it from scratch
in a shared cache folder (at the default place, <cache>/rootfs/riscv64-sid,
which is also what the hiding of the rootfs inside its own cache is tested
with). To iterate locally without the ~4 minutes of creation, point
WHEELFACTORY_TEST_EMULATION_CACHE at a cache folder kept between runs.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import write_project, write_recipe
from support.emulation import emu_project
from wheelfactory._util.fs import mounts_under
from wheelfactory.cli import rootfs as rootfs_cli
from wheelfactory.errors import EnvironmentProblem
from wheelfactory.runners import rootfs as rootfs_mod
from wheelfactory.runners import select_runner
from wheelfactory.runners.binfmt import _binfmt_entry
from wheelfactory.runners.emulated import EmulatedRunner, emulation_problem
from wheelfactory.runners.rootfs import Rootfs
from wheelfactory.settings.factory import host_arch, load_config

pytestmark = [pytest.mark.emulation, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner(emu_cache, tmp_path) -> EmulatedRunner:
    config = load_config(emu_project(tmp_path / "project", emu_cache))
    r = select_runner(config)
    assert isinstance(r, EmulatedRunner), "x86_64 host + riscv64 target must pick the emulated runner"
    return r


def build_dir(runner: EmulatedRunner) -> Path:
    d = runner.config.paths.build / "work"
    d.mkdir(parents=True, exist_ok=True)
    return d


def processes_in(root: Path) -> list[int]:
    """Host PIDs whose root directory is the rootfs (something still running inside it)."""
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if os.readlink(p / "root") == str(root):
                    found.append(int(p.name))
            except OSError:
                pass
    return found


def tree_listing(path: Path) -> dict[str, bytes]:
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --- the host and the rootfs ------------------------------------------------------------

def test_emulation_is_usable_and_binfmt_fixes_itself(runner):
    assert emulation_problem(runner.config) is None
    entry = _binfmt_entry("riscv64")
    assert entry and entry["enabled"] and "F" in entry["flags"]
    # In a private mount namespace without binfmt_misc mounted, the check mounts it again itself.
    code = ("import os; from wheelfactory.settings.factory import load_config; from wheelfactory.runners.emulated import emulation_problem;"
            f"print(repr(emulation_problem(load_config({str(runner.config.root)!r}))));"
            "print(os.path.exists('/proc/sys/fs/binfmt_misc/status'))")
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          f"umount /proc/sys/fs/binfmt_misc; test ! -e /proc/sys/fs/binfmt_misc/status && "
                          f"{sys.executable} -c {json.dumps(code)}"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "True"]


def test_a_disabled_qemu_entry_is_enabled_again(runner):
    subprocess.run(["update-binfmts", "--disable", "qemu-riscv64"], check=True, capture_output=True)
    try:
        entry = _binfmt_entry("riscv64")
        assert entry is None or not entry["enabled"]
        assert emulation_problem(runner.config) is None
        assert _binfmt_entry("riscv64")["enabled"]
    finally:
        subprocess.run(["update-binfmts", "--enable", "qemu-riscv64"], capture_output=True)
    assert runner.run(["uname", "-m"], cwd=build_dir(runner), log=io.StringIO()).stdout.strip() == "riscv64"


def test_not_root_and_no_mmdebstrap_say_what_to_do(runner, tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(os, "geteuid", lambda: 1000)
        assert "need root" in emulation_problem(runner.config)
    # A project whose rootfs does not exist yet, on a PATH without mmdebstrap.
    fresh = load_config(emu_project(tmp_path / "fresh", tmp_path / "fresh-cache"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("unshare", "chroot", "dpkg-query", "mount", "update-binfmts", "qemu-riscv64-static"):
        src = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        if src:
            os.symlink(src, bindir / tool)
    monkeypatch.setenv("PATH", str(bindir))
    problem = emulation_problem(fresh)
    assert "mmdebstrap is missing" in problem and "apt-get install" in problem, problem
    assert emulation_problem(runner.config) is None, "a ready rootfs needs no mmdebstrap"


def test_rootfs_info_reports_size_age_and_versions(runner, capsys):
    info = runner.rootfs.info()
    assert info["ready"] and info["suite"] == "sid" and info["arch"] == "riscv64"
    assert info["path"] == str(runner.config.paths.cache / "rootfs" / "riscv64-sid")
    assert 200 * 2**20 < info["size"] < 1500 * 2**20, info["size"]  # slim: well under the ~900 MB of a full one
    assert info["age_seconds"] >= 0
    assert info["glibc"].startswith("2.") and info["gcc"][0].isdigit()
    assert "3.13" in info["pythons"], "target.pythons 3.13 is installed at creation when the suite has it"
    assert rootfs_cli.rootfs_command(["info", "--json"], root=runner.config.root) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["size"] > 0 and shown["glibc"] == info["glibc"]
    # Slim really left the bulky parts out.
    root = runner.rootfs.path
    assert not list(root.glob("usr/lib/python3*/config-*/libpython3*.a"))
    assert not [p for p in (root / "usr/share/doc").glob("*/changelog*") if p.is_file()]
    assert (root / "usr/share/doc/gcc/copyright").is_file() or (root / "usr/share/doc/libc6/copyright").is_file()


# --- running commands ----------------------------------------------------------------

def test_runs_riscv64_python_with_cwd_env_and_log(runner):
    work = build_dir(runner)
    log = io.StringIO()
    code = ("import os, platform, sys; print(platform.machine(), os.getcwd(), os.environ.get('WF_TEST'), "
            "os.environ.get('PIP_FIND_LINKS'), sys.version_info[:2])")
    proc = runner.run(["python3.13", "-c", code], cwd=work, env={"WF_TEST": "hello"}, log=log)
    assert proc.stdout.split()[:5] == ["riscv64", str(work), "hello", "None", "(3,"]
    assert "riscv64" in log.getvalue() and "[exit 0]" in log.getvalue()
    # Files written inside land in the host's build/ folder (bound at the same path).
    runner.run(["sh", "-c", "uname -m > made-inside.txt"], cwd=work, log=log)
    assert (work / "made-inside.txt").read_text().strip() == "riscv64"
    failed = runner.run(["sh", "-c", "echo to-the-log; exit 7"], cwd=work, log=log, check=False)
    assert failed.returncode == 7 and "to-the-log" in failed.stdout
    with pytest.raises(subprocess.CalledProcessError):
        runner.run(["false"], cwd=work, log=log)
    # TLS to PyPI through the host's CA bundle (copied in and bound read-only).
    proc = runner.run(["python3.13", "-c", "import urllib.request; print(urllib.request.urlopen("
                       "'https://pypi.org/simple/multidict/', timeout=60).status)"], cwd=work, log=log)
    assert proc.stdout.strip() == "200"


def test_builds_a_c_extension_with_the_riscv64_gcc(runner):
    work = build_dir(runner)
    (work / "hello.c").write_text(textwrap.dedent("""
        #include <stdio.h>
        int main(void) { printf("hello from %d-bit riscv\\n", (int)(8 * sizeof(void *))); return 0; }
    """))
    log = io.StringIO()
    runner.run(["gcc", "-O2", "-o", "hello", "hello.c"], cwd=work, log=log)
    with open(work / "hello", "rb") as f:
        assert ELFFile(f).header["e_machine"] == "EM_RISCV"
    assert runner.run(["./hello"], cwd=work, log=log).stdout.strip() == "hello from 64-bit riscv"


def test_mounts_and_processes_are_cleaned_up_on_success_failure_timeout_and_kill(runner):
    work = build_dir(runner)
    root = runner.rootfs.path
    log = io.StringIO()
    before = mounts_under(Path("/"))
    # A background process left behind by a command dies with it (its own PID namespace).
    runner.run(["sh", "-c", "sleep 300 & echo started"], cwd=work, log=log)
    runner.run(["sh", "-c", "exit 3"], cwd=work, log=log, check=False)
    t = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        runner.run(["sleep", "120"], cwd=work, log=log, timeout=3)
    assert time.monotonic() - t < 60
    assert "[timed out after 3s]" in log.getvalue()
    # kill -9 of the Python process that runs a command: the command and its mounts go too.
    script = (f"import io, sys; sys.path.insert(0, {str(REPO)!r}); from wheelfactory.settings.factory import load_config;"
              f"from wheelfactory.runners.emulated import EmulatedRunner; r = EmulatedRunner(load_config({str(runner.config.root)!r}));"
              f"r.run(['sh', '-c', 'echo inside; sleep 300'], cwd={str(work)!r}, log=sys.stdout)")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for line in child.stdout:
        if line.strip() == "inside":
            break
    assert processes_in(root), "the command should be running inside the rootfs now"
    child.kill()
    child.wait()
    deadline = time.monotonic() + 30
    while processes_in(root) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_in(root) == []
    assert mounts_under(root) == [] and mounts_under(Path("/")) == before
    # The killed process's private /tmp is swept by the next command.
    assert list(root.parent.glob(f".{root.name}.run-{child.pid}-*"))
    runner.run(["true"], cwd=work, log=log)
    assert list(root.parent.glob(f".{root.name}.run-*")) == []


def test_concurrent_commands_share_build_but_not_tmp(runner):
    work = build_dir(runner)
    results, errors = {}, []

    def one(n: int) -> None:
        try:
            proc = runner.run(["sh", "-c", f"echo {n} > /tmp/mine; sleep 2; cat /tmp/mine; ls /tmp | wc -l; "
                               f"echo {n} > from-{n}.txt"], cwd=work, log=io.StringIO())
            results[n] = proc.stdout.split()
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(n,)) for n in (1, 2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert results[1][0] == "1" and results[2][0] == "2"
    assert (work / "from-1.txt").read_text() == "1\n" and (work / "from-2.txt").read_text() == "2\n"
    assert mounts_under(runner.rootfs.path) == []


def test_rootfs_is_hidden_inside_its_own_cache(runner):
    cache = runner.config.paths.cache
    assert runner.rootfs.path.parent == cache / "rootfs"
    proc = runner.run(["sh", "-c", f"ls -A {cache}/rootfs | wc -l; ls {cache}"], cwd=build_dir(runner), log=io.StringIO())
    lines = proc.stdout.split()
    assert lines[0] == "0" and "rootfs" in lines[1:]


# --- packages on demand ----------------------------------------------------------------

def test_debian_packages_install_on_demand_and_missing_ones_are_named(runner):
    rootfs = runner.rootfs
    stamp_before = rootfs.stamp()
    with pytest.raises(EnvironmentProblem) as e:
        runner.missing_debian(["libffi-dev", "cpuid"])  # cpuid is built for amd64/i386 only
    msg = str(e.value)
    assert "cpuid" in msg and "riscv64" in msg and "sid" in msg and "libffi-dev" not in msg.split("(")[0]
    assert rootfs.stamp() == stamp_before, "a failed install changes nothing"
    assert rootfs.missing(["libffi-dev"]) == ["libffi-dev"] or "libffi-dev" in stamp_before["installed_on_demand"]
    assert runner.missing_debian(["libffi-dev"]) == []
    assert rootfs.missing(["libffi-dev"]) == []
    assert "libffi-dev" in rootfs.stamp()["installed_on_demand"]
    assert not list((rootfs.path / "var/lib/apt/lists").glob("*_Packages*")), "package lists are not kept"


def test_recipe_with_a_debian_package_riscv64_lacks_fails_clearly(emu_cache, tmp_path):
    root = emu_project(tmp_path / "project", emu_cache, recipes=["multidict"])
    recipe = root / "recipes/multidict/recipe.toml"
    recipe.write_text(recipe.read_text() + '\n[build]\ndebian = ["cpuid"]\n')
    from wheelfactory.cli import build as build_cli

    assert build_cli.build_command(["multidict"], root=root) == 1
    attempt = next((root / "logs/multidict").glob("*.json"))
    rec = json.loads(attempt.read_text())
    assert "cpuid" in rec["message"] and "riscv64" in rec["message"]
    assert tree_listing(root / "dist") == {}


# --- rootfs faults ------------------------------------------------------------------

def _fresh_rootfs(tmp_path: Path, where: Path, extra: str = "") -> Rootfs:
    root = write_project(tmp_path / "p", host_target=False,
                         config=f'[emulation]\nrootfs = "{where}"\n' + extra)
    return Rootfs(load_config(root))


def _assert_nothing_trusted(rfs: Rootfs) -> None:
    assert not rfs.path.exists() and not rfs.ready
    assert [p.name for p in rfs.parent.glob(f".{rfs.name}.*") if p.is_dir()] == []
    assert [m for m in mounts_under(rfs.parent) if m != str(rfs.parent)] == []


def test_mirror_error_leaves_no_half_made_rootfs(tmp_path):
    rfs = _fresh_rootfs(tmp_path, tmp_path / "rootfs" / "riscv64-sid", 'mirror = "http://127.0.0.1:9/debian"\n')
    with pytest.raises(EnvironmentProblem) as e:
        rfs.create()
    assert "127.0.0.1:9" in str(e.value) and "[emulation].mirror" in str(e.value)
    _assert_nothing_trusted(rfs)
    assert rfs.log_path.is_file(), "the mmdebstrap output is kept for a look"


def test_disk_full_leaves_no_half_made_rootfs(tmp_path, monkeypatch):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "wf-test-small", str(small)], check=True)
    try:
        rfs = _fresh_rootfs(tmp_path, small / "riscv64-sid")
        with pytest.raises(EnvironmentProblem) as e:
            rfs.create()  # refused up front: far below the space a rootfs needs
        assert "free" in str(e.value) and str(small) in str(e.value)
        monkeypatch.setattr(rootfs_mod, "MIN_FREE_BYTES", 0)
        with pytest.raises(EnvironmentProblem) as e:
            rfs.create()  # really runs out of space while mmdebstrap downloads and unpacks
        print(e.value)
        assert "full" in str(e.value) or "space" in str(e.value).lower(), str(e.value)
        _assert_nothing_trusted(rfs)
    finally:
        subprocess.run(["umount", "--lazy", str(small)])


def _processes_mentioning(path: Path) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                cmdline = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmdline:
                found.append(cmdline)
    return found


def test_interrupted_creation_is_never_trusted(tmp_path):
    where = tmp_path / "rootfs" / "riscv64-sid"
    rfs = _fresh_rootfs(tmp_path, where)
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from wheelfactory.settings.factory import load_config;"
            f"from wheelfactory.runners.rootfs import Rootfs; Rootfs(load_config({str(rfs.config.root)!r})).create()")

    def start_and_wait() -> subprocess.Popen:
        child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for line in child.stderr:  # mmdebstrap's progress: it is busy inside the half-made folder
            if "downloading packages" in line or "extracting" in line:
                return child
        raise AssertionError("mmdebstrap never got going")

    child = start_and_wait()
    child.send_signal(signal.SIGINT)  # Ctrl-C: cleans up after itself
    assert child.wait(timeout=120) != 0
    _assert_nothing_trusted(rfs)

    child = start_and_wait()
    child.kill()  # kill -9: no chance to clean up; what is left must not be trusted
    child.wait()
    deadline = time.monotonic() + 30
    while _processes_mentioning(where.parent) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_mentioning(where.parent) == [], "mmdebstrap, apt and dpkg die with their parent"
    assert not rfs.ready and not where.exists()
    assert mounts_under(where.parent) == []
    assert [p for p in where.parent.glob(".riscv64-sid.creating-*")], "kill -9 leaves the temp folder"
    # The next creation throws it away first (here it then fails fast on an unreachable mirror).
    bad = _fresh_rootfs(tmp_path / "again", where, 'mirror = "http://127.0.0.1:9/debian"\n')
    with pytest.raises(EnvironmentProblem):
        bad.create()
    _assert_nothing_trusted(bad)


# --- the real thing: a riscv64 wheel through the pipeline ---------------------------------

def _so_machines(wheel: Path) -> dict[str, str]:
    out = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if ".so" in Path(name).name:
                with zf.open(name) as f:
                    out[name] = ELFFile(io.BytesIO(f.read())).header["e_machine"]
    return out


def test_build_multidict_for_riscv64_on_x86_64(emu_cache, tmp_path):
    """`nox -s build-multidict` with the default target: select_runner picks emulation by itself."""
    assert host_arch() != "riscv64"
    root = emu_project(tmp_path / "project", emu_cache, recipes=["multidict"])
    config = load_config(root)
    assert config.arch == "riscv64" and config.policy == "manylinux_2_39"
    from wheelfactory.cli import build as build_cli

    assert build_cli.build_command(["multidict"], root=root) == 0
    wheels = sorted((root / "dist").glob("multidict-*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    assert "-cp313-" in wheel.name and "manylinux_" in wheel.name and wheel.name.endswith("_riscv64.whl")
    machines = _so_machines(wheel)
    assert machines and set(machines.values()) == {"EM_RISCV"}, machines
    record = json.loads((root / "dist" / f"{wheel.name}.json").read_text())
    host = record["host"]
    assert host["runner"] == "emulated" and host["emulated"] is True and host["host_arch"] == host_arch()
    assert host["rootfs"]["suite"] == "sid" and host["rootfs"]["glibc"] and host["rootfs"]["gcc"]
    assert host["rootfs"]["created_at"] and "qemu" in host["emulator"]
    assert record["achieved_policy"].startswith("manylinux_")

    # Installed into a bare riscv64 venv and imported, independently of the pipeline's own verify.
    runner = EmulatedRunner(config)
    work = root / "build" / "check"
    work.mkdir(parents=True)
    log = io.StringIO()
    local = work / wheel.name  # dist/ is not shared with the rootfs; build/ is
    local.write_bytes(wheel.read_bytes())
    runner.run(["python3.13", "-m", "venv", "--without-pip", str(work / "venv")], cwd=work, log=log)
    tools_py = str(config.paths.cache / "tools" / runner.id / "py3.13" / "bin" / "python")
    runner.run([tools_py, "-m", "pip", "--python", str(work / "venv/bin/python"), "install", "--no-index",
                "--no-deps", str(local)], cwd=work, log=log)
    proc = runner.run([str(work / "venv/bin/python"), "-c",
                       "import multidict, multidict._multidict as m, platform; "
                       "print(platform.machine(), m.__file__.endswith('.so'), multidict.MultiDict(a=1)['a'])"],
                      cwd=work, log=log)
    assert proc.stdout.split() == ["riscv64", "True", "1"], log.getvalue()[-2000:]


def _local_git_project(tmp_path: Path) -> Path:
    """A local git repo with two tiny C-extension projects: one needs glibc 2.42, one crashes its build."""
    repo = tmp_path / "upstream"
    new = repo / "newsym"
    new.mkdir(parents=True)
    (new / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "newsym"
        version = "1.0"
    """))
    (new / "setup.py").write_text('from setuptools import setup, Extension\n'
                                  'setup(ext_modules=[Extension("newsym", ["newsym.c"])])\n')
    # cfgetospeed got a new symbol version in glibc 2.42: linked here, the wheel needs glibc >= 2.42.
    (new / "newsym.c").write_text(textwrap.dedent("""
        #include <Python.h>
        #include <termios.h>
        static PyObject *ospeed(PyObject *self, PyObject *args) {
            struct termios t = {0};
            return PyLong_FromLong((long)cfgetospeed(&t));
        }
        static PyMethodDef methods[] = {{"ospeed", ospeed, METH_NOARGS, ""}, {0}};
        static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "newsym", 0, -1, methods};
        PyMODINIT_FUNC PyInit_newsym(void) { return PyModule_Create(&mod); }
    """))
    crash = repo / "crash"
    crash.mkdir()
    (crash / "pyproject.toml").write_text((new / "pyproject.toml").read_text().replace("newsym", "crashes"))
    (crash / "setup.py").write_text(textwrap.dedent("""
        import ctypes, sys
        if "bdist_wheel" in sys.argv:
            print("compiling... about to crash", flush=True)
            ctypes.string_at(0)  # SIGSEGV in the emulated interpreter
        from setuptools import setup
        setup()
    """))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    return repo


def test_policy_beyond_the_rootfs_glibc_fails_naming_the_symbols_and_a_crash_keeps_its_log(emu_cache, tmp_path):
    repo = _local_git_project(tmp_path)
    root = emu_project(tmp_path / "project", emu_cache)
    for name, sub in (("newsym", "newsym"), ("crashes", "crash")):
        write_recipe(root, name, f"""
            [package]
            name = "{name}"
            version = "1.0"
            [source]
            git = "{repo}"
            rev = "main"
            subdirectory = "{sub}"
        """)
    from wheelfactory.cli import build as build_cli

    assert build_cli.build_command(["newsym"], root=root) == 1
    rec = json.loads(next((root / "logs/newsym").glob("*.json")).read_text())
    msg = rec["message"]
    assert "manylinux_2_39" in msg and "cfgetospeed@GLIBC_2.42" in msg, msg
    assert tree_listing(root / "dist") == {}

    assert build_cli.build_command(["crashes"], root=root) == 1
    rec = json.loads(next((root / "logs/crashes").glob("*.json")).read_text())
    log_text = (root / rec["log"]).read_text()
    assert "about to crash" in log_text and rec["status"] == "failed"
    assert tree_listing(root / "dist") == {}


def test_update_is_untrusted_while_it_runs_and_an_interrupted_one_is_finished(runner):
    rootfs = runner.rootfs
    before = rootfs.stamp()
    marker = rootfs.path / rootfs_mod.UPDATING
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from wheelfactory.settings.factory import load_config;"
            f"from wheelfactory.runners.rootfs import Rootfs; Rootfs(load_config({str(runner.config.root)!r})).update()")
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "update marks the rootfs before it touches it"
    child.kill()  # kill -9 in the middle of apt
    child.wait()
    deadline = time.monotonic() + 30
    while processes_in(rootfs.path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not rootfs.ready and "half-updated" in rootfs.info()["state"]
    assert mounts_under(rootfs.path) == []

    after = rootfs.update()  # finishes the interrupted update
    assert rootfs.ready and not marker.exists()
    assert after["created_at"] == before["created_at"] and after["updated_at"] >= before["updated_at"]
    assert after["glibc"] and "3.13" in after["pythons"]
    assert runner.run(["python3.13", "-c", "print(6 * 7)"], cwd=build_dir(runner), log=io.StringIO()).stdout.strip() == "42"


def test_a_half_updated_rootfs_that_cannot_be_finished_is_made_afresh(tmp_path, capsys):
    """A build finds an interrupted update it cannot finish (apt fails): it makes the rootfs afresh.

    Here the fresh one cannot be made either (unreachable mirror), which keeps the test fast: the
    build stops with mmdebstrap's message, and the half-updated rootfs stays untrusted.
    """
    where = tmp_path / "rootfs" / "riscv64-sid"
    rfs = _fresh_rootfs(tmp_path, where, 'mirror = "http://127.0.0.1:9/debian"\n')
    (where / "etc").mkdir(parents=True)  # no /bin/sh or /dev inside: finishing the update fails
    stamp = {"schema": rootfs_mod.STAMP_SCHEMA, "arch": "riscv64", "suite": "sid", "created_at": "2025-01-01T00:00:00Z"}
    (where / rootfs_mod.UPDATING).write_text(json.dumps(stamp))  # what a killed update leaves
    assert "half-updated" in rfs.info()["state"]
    with pytest.raises(EnvironmentProblem) as e:
        rfs.ensure()
    err = capsys.readouterr().err
    assert "finishing the update failed" in err and "recreating it" in err, err
    assert "mmdebstrap failed" in str(e.value) and "127.0.0.1:9" in str(e.value), str(e.value)
    assert not rfs.ready and (where / rootfs_mod.UPDATING).is_file()
    assert [p.name for p in where.parent.glob(".riscv64-sid.*") if p.is_dir()] == []
    assert mounts_under(where.parent) == []


def test_remove_deletes_only_a_wheelfactory_rootfs(tmp_path, capsys):
    where = tmp_path / "rootfs" / "riscv64-sid"
    rfs = _fresh_rootfs(tmp_path, where)
    assert rfs.info()["state"] == "missing"
    where.mkdir(parents=True)
    (where / "keep.txt").write_text("not ours")
    with pytest.raises(EnvironmentProblem) as e:
        rfs.remove()
    assert "not a wheelfactory rootfs" in str(e.value) and (where / "keep.txt").exists()
    assert rfs.info()["state"] == "not a wheelfactory rootfs"
    # A (tiny) rootfs with a stamp, plus the leftovers of a killed creation and a killed command.
    (where / "keep.txt").unlink()
    (where / "etc").mkdir()
    stamp = {"schema": rootfs_mod.STAMP_SCHEMA, "arch": "riscv64", "suite": "sid", "created_at": "2025-01-01T00:00:00Z"}
    (where / rootfs_mod.STAMP).write_text(json.dumps(stamp))
    (where.parent / ".riscv64-sid.creating-1-ab").mkdir()
    (where.parent / ".riscv64-sid.run-1-cd").mkdir()
    assert rfs.ready
    assert rootfs_cli.rootfs_command(["remove"], root=rfs.config.root) == 0
    assert not where.exists() and not [p for p in where.parent.iterdir() if p.is_dir()]
    assert rootfs_cli.rootfs_command(["remove"], root=rfs.config.root) == 0  # nothing there: fine
    assert "no rootfs" in capsys.readouterr().err
