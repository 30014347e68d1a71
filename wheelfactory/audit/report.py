"""The audit as a whole: requirements in, an AuditResult out (the report and its JSON).

The requested projects are looked up first, so an unknown name or a dead index
shows within a second; the tree is resolved by uv (resolve.py) while the pages
of the packages it selects are fetched (cache.py); each pin is then classified
(classify.py). The printed table and the command are in ``cli/audit.py``.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..settings.factory import Config
from ..settings.recipe import load_all
from ..settings.target import Target
from .cache import AuditCache, CachedIndex, audit_indexes
from .classify import NEEDS, STATUS_ORDER, PackageReport, classify, mark_only_via_missing
from .requirements import AuditError, RequirementsInput
from .resolve import (Pin, audit_target, dependency_metadata, for_target, parse_compile_output, resolution_key,
                      resolve)

# Exit status of `invoke audit` when some package still needs a recipe (1 = an error).
EXIT_MISSING = 2


class Progress:
    """What run_audit says while it works; this one says nothing (the CLI draws progress bars)."""

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def start_resolve(self) -> None:
        pass

    def resolved(self, n: int) -> None:
        """uv has selected ``n`` packages so far."""

    def end_resolve(self) -> None:
        pass

    def start_check(self, total: int) -> None:
        pass

    def checked(self) -> None:
        pass


@dataclasses.dataclass
class AuditResult:
    """The audit of one requirement set: every package of the tree on the target, needs first."""

    target: Target  # its policy resolved to manylinux_2_NN
    pythons: tuple[str, ...]
    requirements: RequirementsInput
    packages: list[PackageReport]
    indexes: dict[str, str]
    seconds: float
    cached_resolution: bool
    network_requests: int
    not_for_target: list[str] = dataclasses.field(default_factory=list)  # requirements whose marker is false
    own_metadata: list[str] = dataclasses.field(default_factory=list)  # resolved with our metadata, not PyPI's

    @property
    def missing(self) -> list[PackageReport]:
        return [p for p in self.packages if p.needs_recipe]

    def summary(self) -> dict[str, int]:
        """Package counts per status, plus ``with-recipe`` (needs one and has it) and ``total``."""
        counts = {s: 0 for s in STATUS_ORDER}
        for p in self.packages:
            counts[p.status] += 1
        counts["with-recipe"] = sum(1 for p in self.packages if p.status in NEEDS and p.recipe)
        counts["total"] = len(self.packages)
        return counts

    def to_json(self) -> dict:
        return {
            "target": {"arch": self.target.arch, "policy": self.target.policy, "pythons": list(self.pythons)},
            "requirements": self.requirements.requirements,
            "constraints": self.requirements.constraints,
            "indexes": self.indexes,
            "packages": [p.to_json() for p in self.packages],
            "summary": self.summary(),
            "needs_recipe": [p.name for p in self.missing],
            "not_for_target": self.not_for_target,
            "own_metadata": self.own_metadata,
            "seconds": round(self.seconds, 3),
        }


def run_audit(config: Config, reqs: RequirementsInput, *, pythons: list[str] | None = None,
              refresh: bool = False, progress: Progress | None = None) -> AuditResult:
    """Resolve ``reqs`` for the target and classify every package of the tree.

    ``pythons`` (X.Y) replaces target.pythons; ``refresh`` asks the indexes
    again even when the cache is fresh. Raises AuditError (bad input, unknown
    package, unreachable index) or ConfigError (an unusable target).
    """
    started = time.monotonic()
    target, pys = audit_target(config, pythons)
    pypi, ours, labels = audit_indexes(config)
    cache = AuditCache(config.paths.cache / "audit" / "index.sqlite")
    index = CachedIndex(cache, concurrency=config.audit.concurrency, max_age=float(config.audit.max_age),
                        refresh=refresh, labels=labels)
    applicable, not_for_target = for_target(reqs, target, pys)
    if not applicable.requirements:
        raise AuditError(f"nothing to audit for {target.arch} (CPython {', '.join(pys)}): every requirement's "
                         f"marker is false there ({', '.join(not_for_target)})")
    metadata = dependency_metadata(config, load_all(config.paths.recipes).values())
    run = _Audit(config, applicable, target, pys, cache, index, progress or Progress(), metadata)
    try:
        with run.progress:
            pins, cached = run.pins(refresh)
            reports = run.classify(pins)
    finally:
        index.close()
        cache.close()
    return AuditResult(target, pys, reqs, reports, {"pypi": pypi, "ours": ", ".join(ours)},
                       time.monotonic() - started, cached, index.network_requests, not_for_target,
                       [m["name"] for m in metadata])


@dataclasses.dataclass
class _Audit:
    config: Config
    reqs: RequirementsInput
    target: Target
    pythons: tuple[str, ...]
    cache: AuditCache
    index: CachedIndex
    progress: Progress
    metadata: list[dict] = dataclasses.field(default_factory=list)  # resolve.dependency_metadata

    def __post_init__(self) -> None:
        self.pypi, self.ours, self.labels = audit_indexes(self.config)

    @property
    def indexes(self) -> list[str]:
        return [self.pypi, *self.ours]

    def lookup(self, name: str) -> None:
        for base in self.indexes:
            self.index.fetch(base, name)

    def pins(self, refresh: bool) -> tuple[list[Pin], bool]:
        """The tree's pins (from the cache when fresh), and whether they came from the cache."""
        top = [canonicalize_name(r.name) for r in map(Requirement, self.reqs.requirements) if not r.url]
        for name in top:
            self.lookup(name)
        key = resolution_key(self.reqs, self.pythons, self.indexes, self.metadata)
        output = None if refresh else self.cache.resolution(key, float(self.config.audit.max_age))
        if output is not None:
            return parse_compile_output(output), True
        self.progress.start_resolve()
        output = self._resolve_checking(top)
        self.cache.store_resolution(key, output)
        self.progress.end_resolve()
        return parse_compile_output(output), False

    def _resolve_checking(self, top: list[str]) -> str:
        """uv's resolution, with page lookups as it selects packages; stopped early by a bad top name."""
        seen: set[str] = set()

        def on_name(name: str) -> None:
            name = canonicalize_name(name)
            if name not in seen:
                seen.add(name)
                self.progress.resolved(len(seen))
                self.lookup(name)

        abort = threading.Event()
        errors: list[BaseException] = []
        checker = threading.Thread(target=self._check_top, args=(top, errors, abort), daemon=True)
        checker.start()
        try:
            output = resolve(self.reqs, self.pythons, self.indexes, self.labels, metadata=self.metadata,
                             on_name=on_name, abort=abort)
        except AuditError:
            checker.join(timeout=30)
            if errors:  # our own, clearer finding about the same cause
                raise errors[0] from None
            raise
        checker.join(timeout=30)
        if errors:
            raise errors[0]
        return output

    def _check_top(self, top: list[str], errors: list[BaseException], abort: threading.Event) -> None:
        for name in top:
            try:
                pages = [self.index.fetch(b, name).result() for b in self.indexes]
            except AuditError as e:
                errors.append(e)
                abort.set()
                return
            if all(p.status == 404 for p in pages):
                errors.append(AuditError(
                    f"unknown package '{name}': not on {self.pypi}"
                    + (f" nor on {', '.join(self.ours)}" if self.ours else "")
                    + "; check the spelling of the requirement"))
                abort.set()
                return

    def classify(self, pins: list[Pin]) -> list[PackageReport]:
        """One report per pin that applies on the target, needs first; a package may be pinned
        twice (forks by Python version)."""
        wanted: list[tuple[Pin, list[str]]] = []
        for pin in pins:
            pys = pin.pythons(self.target, self.pythons)
            if pys:
                wanted.append((pin, pys))
                if not pin.url:
                    self.lookup(pin.name)
        self.progress.start_check(len(wanted))
        reports = []
        for pin, pys in wanted:
            pypi_files, our_files = self._files(pin) if not pin.url else ([], [])
            reports.append(classify(pin, pys, self.target, pypi_files, our_files, self.config.paths.recipes,
                                    list(self.config.audit.ignore)))
            self.progress.checked()
        mark_only_via_missing(reports)
        reports.sort(key=lambda r: (STATUS_ORDER.index(r.status), r.name, r.version))
        return reports

    def _files(self, pin: Pin) -> tuple[list, list]:
        pypi_page = self.index.fetch(self.pypi, pin.name).result()
        our_pages = [self.index.fetch(b, pin.name).result() for b in self.ours]
        pypi_files = self.cache.files(pypi_page.url, pin.version) if pypi_page.status == 200 else []
        our_files = [f for p in our_pages if p.status == 200 for f in self.cache.files(p.url, pin.version)]
        return pypi_files, our_files
