"""Every check reads only the target facts it declares (@check(reads=...)): the audit groups targets by them.

Each unit test that evaluates a pair through ``factories.run`` runs every check once more, alone, on a
traced view of the target, and fails when a check read a fact it did not declare, or when the traced run
found anything else than the plain one (a tracer that changes a verdict would prove nothing).

With ``MIGCHECK_COLLECT_READS=FILE`` it appends "CHECK FACT" lines to FILE instead of asserting: how the
declarations were first written.
"""

from __future__ import annotations

import os

from migcheck.checks.registry import (CONDITIONS, FREE_READS, SOURCE_STATUS, VIEWS, CheckContext, all_checks,
                                     reads_for, run_check)
from migcheck.facts.host import build_host_facts

_METHODS = {"domcaps_for": "domcaps", "error_about": "errors"}  # a method of HostFacts -> the fact it reads


class _Traced:
    """Attribute reads of one facts object, logged by fact name; the values are the real ones."""

    __slots__ = ("_obj", "_log", "_prefix")

    def __init__(self, obj, log: set[str], prefix: str = "") -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_prefix", prefix)

    def __setattr__(self, name, value):
        raise AttributeError("facts are read-only during a check")


class TracedTarget(_Traced):
    __slots__ = ()

    def __getattr__(self, name: str):
        value = getattr(self._obj, name)
        if name == "caps" and value is not None:
            return _TracedCaps(value, self._log)
        self._log.add(_METHODS.get(name, name))
        return value


class _TracedCaps(_Traced):
    __slots__ = ()

    def __getattr__(self, name: str):
        self._log.add("caps.uuid" if name == "uuid" else "caps")
        return getattr(self._obj, name)


class TracedSource(_Traced):
    """The source: only its guest's status XML is a read the audit must know of (it parses it only then),
    and so is any read of its errors that could tell whether that XML parsed."""

    __slots__ = ()

    def __getattr__(self, name: str):
        value = getattr(self._obj, name)
        if name == "guest" and value is not None:
            return _TracedGuest(value, self._log)
        if name == "errors":
            return _StatusWatchingErrors(value, self._log)
        if name == "error_about":
            return self._error_about
        return value

    def _error_about(self, fact: str):
        if _StatusWatchingErrors._KEY.startswith(fact.split(":")[0]):
            self._log.add(SOURCE_STATUS)
        return self._obj.error_about(fact)


class _StatusWatchingErrors(dict):
    """The source's errors: the status XML's key, or the dict as a whole, is a read of the status XML."""

    _KEY = "status_xml"

    def __init__(self, data: dict, log: set[str]) -> None:
        super().__init__(data)
        self._log = log

    def _whole(self) -> None:
        self._log.add(SOURCE_STATUS)

    def get(self, key, default=None):
        if key == self._KEY:
            self._whole()
        return super().get(key, default)

    def __getitem__(self, key):
        if key == self._KEY:
            self._whole()
        return super().__getitem__(key)

    def __contains__(self, key):
        if key == self._KEY:
            self._whole()
        return super().__contains__(key)

    def __iter__(self):
        self._whole()
        return super().__iter__()

    def __len__(self):
        self._whole()
        return super().__len__()

    def keys(self):
        self._whole()
        return super().keys()

    def values(self):
        self._whole()
        return super().values()

    def items(self):
        self._whole()
        return super().items()


class _TracedGuest(_Traced):
    __slots__ = ()

    def __getattr__(self, name: str):
        if name == "status":
            self._log.add(SOURCE_STATUS)
        return getattr(self._obj, name)


def allowed_reads(chk, dom=None, flags=None, target=None) -> set[str]:
    """What a check may read for this guest: its reads (a view allows its fact, a conditional read only where its
    condition holds for the guest and flags); any read allows the errors."""
    declared = (reads_for(chk, dom, flags, target) if dom is not None
                else frozenset(r.partition("?")[0] for r in chk.reads))
    out = set(FREE_READS) | {d.split("~")[0] for d in declared}
    if out - FREE_READS - {SOURCE_STATUS}:
        out.add("errors")  # why a declared fact is missing
    return out


def traced_reads(source_raw, target_raw, flags, migration_xml=None) -> dict[str, set[str]]:
    """check id -> the facts it read, each check run alone on traced facts (findings compared with a plain run)."""
    src, dst = build_host_facts(source_raw), build_host_facts(target_raw)
    out: dict[str, set[str]] = {}
    try:
        dom = CheckContext(source=src, target=dst, flags=flags, migration_xml=migration_xml).domain
    except Exception:  # no guest definition: every check stops at it
        dom = None
    for chk in all_checks():
        plain = run_check(chk, CheckContext(source=src, target=dst, flags=flags, migration_xml=migration_xml))
        log: set[str] = set()
        ctx = CheckContext(source=TracedSource(src, log), target=TracedTarget(dst, log), flags=flags,
                           migration_xml=migration_xml)
        traced = run_check(chk, ctx)
        assert traced == plain, f"{chk.id}: the traced run found {traced}, the plain one {plain}"
        out[chk.id] = log
    out["_domain"] = dom  # type: ignore[assignment]  # what the conditions are judged on
    out["_target"] = dst  # type: ignore[assignment]
    return out


def assert_reads_declared(source_raw, target_raw, flags, migration_xml=None) -> None:
    reads = traced_reads(source_raw, target_raw, flags, migration_xml)
    dom, dst = reads.pop("_domain"), reads.pop("_target")
    collect = os.environ.get("MIGCHECK_COLLECT_READS")
    if collect:
        with open(collect, "a") as fh:
            fh.writelines(f"{cid} {fact}\n" for cid, facts in reads.items() for fact in sorted(facts))
        return
    checks = {c.id: c for c in all_checks()}
    undeclared = {cid: sorted(facts - allowed_reads(checks[cid], dom, flags, dst)) for cid, facts in reads.items()}
    undeclared = {cid: facts for cid, facts in undeclared.items() if facts}
    assert not undeclared, f"checks read target facts they do not declare (@check(reads=...)): {undeclared}"


def known_reads() -> set[str]:
    """Every name a declaration may use."""
    from migcheck.facts.host import HostFacts

    facts = (set(HostFacts.model_fields) - {"raw", "spec"}) | {"caps.uuid", "domcaps", SOURCE_STATUS}
    return facts | set(VIEWS) | {f"{f}?{c}" for f in facts for c in CONDITIONS}
