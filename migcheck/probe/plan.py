"""What the probe asks the hosts for one guest, as the checks declare it.

A check that needs an answer only a host can give for this very guest (does this
path exist there, how large is it; does the target's libvirt accept this CPU
definition) declares a :class:`Question` on its registry entry
(``@check(..., asks=...)``).  The probe runs the union of every check's
questions: it knows no check, and a new check that needs one more path touches
its own module only.  ``migcheck.checks.registry.probe_plan()`` builds the plan;
the caller hands it to the probe (``ProbeOptions.plan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from migcheck.facts.models import Domain
    from migcheck.probe.raw import NetworkInfo

# the kinds of question
TARGET_PATHS = "target paths"  # paths to stat on the target (the probe reads image headers of disk paths too)
SOURCE_PATHS = "source paths"  # paths to stat on the source (sizes: what storage copy and flash files need)
TARGET_CPUS = "target CPUs"  # CPU definitions the target's libvirt is asked to compare with its host
SOURCE_CPUS = "source CPUs"  # the same question asked of the source, to weigh the target's answer
KINDS = (TARGET_PATHS, SOURCE_PATHS, TARGET_CPUS, SOURCE_CPUS)


@dataclass(frozen=True)
class PlanHost:
    """What the probe knows of a host when it plans its questions for a guest."""

    qemu_conf: str | None = None  # its qemu.conf text (names its TLS folders)
    networks: list[NetworkInfo] | None = None  # its libvirt networks (hand out host bridges and NICs)
    domcaps_xml: dict[str, str] = field(default_factory=dict)  # its domain capabilities, by domcaps key


@dataclass(frozen=True)
class Question:
    """One kind of answer a check needs, and how to name what to ask for a guest on a host."""

    kind: str
    ask: Callable[[Domain, PlanHost], Iterable[str]]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind of question {self.kind!r}: one of {', '.join(KINDS)}")


class ProbePlan:
    """The union of the checks' questions, answered per guest in declaration order, each item once."""

    def __init__(self, questions: Iterable[Question]) -> None:
        self.questions: dict[str, list[Question]] = {k: [] for k in KINDS}
        for q in questions:
            self.questions[q.kind].append(q)

    def _items(self, kind: str, dom: Domain | None, host: PlanHost) -> list[str]:
        if dom is None:
            return []
        items = (item for q in self.questions[kind] for item in q.ask(dom, host))
        if kind in (TARGET_PATHS, SOURCE_PATHS):
            items = (p for p in items if p and p.startswith("/"))
        return list(dict.fromkeys(items))

    def target_paths(self, dom: Domain | None, qemu_conf: str | None = None,
                     networks: list[NetworkInfo] | None = None) -> list[str]:
        return self._items(TARGET_PATHS, dom, PlanHost(qemu_conf=qemu_conf, networks=networks))

    def source_paths(self, dom: Domain | None, qemu_conf: str | None = None) -> list[str]:
        return self._items(SOURCE_PATHS, dom, PlanHost(qemu_conf=qemu_conf))

    def target_cpus(self, dom: Domain | None, source_domcaps_xml: dict[str, str]) -> list[str]:
        """CPU definitions the target compares: the guest's own, or the source's host CPU for host-passthrough."""
        return self._items(TARGET_CPUS, dom, PlanHost(domcaps_xml=source_domcaps_xml))

    def source_cpus(self, dom: Domain | None) -> list[str]:
        return self._items(SOURCE_CPUS, dom, PlanHost())
