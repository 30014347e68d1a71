"""``nox -s rootfs -- create|update|remove|info``: the target's build rootfs, clean system and native rootfs
(the cross compilers, unless ``[emulation].cross-compilers = "off"`` or the target is this host's arch:
then both systems are native and need no cross compilers), and their info."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from .. import ui
from .._util.fs import human_age, human_size
from ..runners.clean import systems
from ..runners.cross import NativeHalf
from ..settings.factory import load_config
from ..settings.target import host_arch


def rootfs_command(argv: Sequence[str], root: Path | None = None) -> int:
    """``nox -s rootfs -- create|update|remove|info [--replace] [--json]``; the exit status."""
    p = argparse.ArgumentParser(prog="nox -s rootfs --",
                                description="Create, update, remove or describe the target's build rootfs, "
                                            "clean system and native rootfs of cross compilers (in that order).")
    p.add_argument("action", nargs="?", default="info", choices=("create", "update", "remove", "info"))
    p.add_argument("--replace", action="store_true", help="create: build a fresh one even if one exists")
    p.add_argument("--json", action="store_true", help="info: print the facts as JSON on stdout")
    try:
        args = p.parse_args(list(argv))
    except SystemExit as e:
        return int(e.code or 0)
    config = load_config(root)
    found = systems(config)
    if config.emulation.cross_compilers != "off" and config.arch != host_arch():
        found.append(NativeHalf(config))  # after the build rootfs: its gcc version picks the cross compilers
    for rootfs in found:
        if isinstance(rootfs, NativeHalf) and args.action in ("create", "update"):
            rootfs = found[-1] = NativeHalf(config)
        if args.action == "create":
            rootfs.create(replace=args.replace)
        elif args.action == "update":
            rootfs.update()
        elif args.action == "remove":
            if rootfs.remove():
                ui.info(f"removed the {rootfs.label} at {rootfs.path}")
            else:
                ui.info(f"no {rootfs.label} at {rootfs.path}")
    if args.action == "remove":
        return 0
    infos = [dict(r.info(), system=r.label) for r in found]
    if args.json:
        extra = {"cross_compilers": infos[2]} if len(infos) > 2 else {}
        print(json.dumps(infos[0] | {"clean_system": infos[1]} | extra, indent=2, sort_keys=True))
        return 0
    for info in infos:
        show_info(info)
    return 0 if all(i["ready"] for i in infos) or args.action == "info" else 1


def show_info(info: dict) -> None:
    """``Rootfs.info()`` as a table on stderr (or one line when there is no ready rootfs)."""
    if not info["ready"]:
        ui.info(f"{info.get('system', 'rootfs')} {info['arch']} {info['suite']} ({_how(info)}) at {info['path']}: "
                f"{info['state']} (create it with: nox -s rootfs -- create)")
        return
    table = Table(title=f"{info['arch']} Debian {info['suite']} {info.get('system', 'rootfs')} ({info['variant']}, "
                        f"{_how(info)})",
                  title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("path", info["path"]),
        ("size", human_size(info["size"])),
        ("age", f"{human_age(info['age_seconds'])} (created {info['created_at']}, updated {info['updated_at']})"),
        ("mirror", info["mirror"]),
        ("glibc", info["glibc"]),
        ("gcc", info["gcc"] or "-"),
        *([("cross compilers", ", ".join(f"{p} {v}" for p, v in info["compilers"].items()))]
          if info.get("compilers") else []),
        ("Pythons", ", ".join(f"{v} ({full})" for v, full in info["pythons"].items()) or "-"),
        ("installed on demand", ", ".join(info.get("installed_on_demand") or []) or "-"),
        ("created in", f"{info.get('creation_seconds', 0):.0f}s with {info.get('mmdebstrap', 'mmdebstrap')}"),
    ]
    for k, v in rows:
        table.add_row(k, str(v))
    ui.console.print(table)


def _how(info: dict) -> str:
    """How commands run in the system: "emulated" (QEMU) or "native" (this host's arch)."""
    return "emulated" if info["emulated"] else "native"
