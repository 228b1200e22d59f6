"""Probe a source and a target host for one guest: both at once, each fact once.

:func:`start_probe_pair` returns at once: each host's worker thread opens its
connections (paramiko and libvirt only, :mod:`migcheck.probe.session`) and only
then imports the fact models and gathering code.  ``migcheck SRC DST VM`` uses
the time the SSH handshakes take to import the checks.

Each side runs its stages in the order :mod:`migcheck.probe.stages` gives.
The target waits for the source only where it must (``PAIR_WAITS``): for the
guest's XML (before its guest-specific questions) and for the source's domain
capabilities (before judging a host-passthrough CPU).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from migcheck.connectors.hostspec import HostTarget, redact
from migcheck.probe.session import (
    HostSession,
    HostWorker,
    ProbeError,
    ProbeOptions,
    deadline_join,
    raise_failure,
    scrubbed,
    stage,
)
from migcheck.probe.stages import (
    CPUS,
    DOMCAPS,
    GUEST,
    GUEST_FILES,
    HOST_FACTS,
    HOST_FILES,
    IMAGES,
    PAIR_WAITS,
    PATHS,
    PEERS,
    RESOLUTION,
    SOURCE,
    TARGET,
    TARGET_OBJECTS,
    Stop,
    run_stages,
    stages,
)

if TYPE_CHECKING:
    from migcheck.facts.models import Domain
    from migcheck.probe.raw import RawHost


@dataclass
class PairProbe:
    source: "RawHost"
    target: "RawHost"
    domain: str


WAITING_FOR_TARGET = "waiting for the target's hostname"

# what a worker says it is doing (named if it misses its deadline), on entering a stage of the order
_SAYS = {
    (SOURCE, HOST_FACTS): "gathering host facts",
    (SOURCE, DOMCAPS): "asking for domain capabilities and CPU comparisons",
    (SOURCE, HOST_FILES): "reading host files and paths",
    (SOURCE, RESOLUTION): "resolving the target's migration address here",
    (TARGET, HOST_FACTS): "gathering host facts",
    (TARGET, GUEST_FILES): "asking for domain capabilities, paths and image headers",
    (TARGET, CPUS): "comparing CPUs",
}
_WAITING = {  # ... and while it waits for the other side (PAIR_WAITS)
    (SOURCE, RESOLUTION): WAITING_FOR_TARGET,
    (TARGET, GUEST_FILES): "waiting for the source's answers",
    (TARGET, CPUS): "waiting for the source's CPU",
}


class PendingPair:
    """Both hosts' probes, running; :meth:`result` waits for them (within the probe's deadline)."""

    def __init__(self, source: HostTarget, target: HostTarget, vm: str, options: ProbeOptions):
        if options.plan is None:
            raise ValueError("probe_pair needs a plan: ProbeOptions(plan=migcheck.checks.registry.probe_plan)")
        self.source, self.target, self.vm, self.options = source, target, vm, options
        self.started = time.monotonic()
        self._src_raw: list[RawHost] = []
        self._src_domain: list[Domain] = []
        self._dst_raw: list[RawHost] = []
        # a stage the other side waits for is done (or its side failed): the source's guest (its XML is
        # known), the source's CPU comparisons (its domain capabilities too), the target's host files
        # (its hostname and qemu.conf)
        self._done = {waited: threading.Event() for waited in PAIR_WAITS.values()}
        self._sessions: list[HostSession] = []
        self._src_session: list[HostSession] = []  # the source's, once open (the target may ask it one thing)
        self._workers = [(HostWorker(self._work_source, "source"), source),
                         (HostWorker(self._work_target, "target"), target)]
        for w, _ in self._workers:
            w.start()

    def _open(self, target: HostTarget) -> HostSession:
        s = HostSession(target, self.options)
        self._sessions.append(s)
        return s.open()

    def _release(self, role: str) -> None:
        """This side is done or failed: nothing the other side waits for is still to come."""
        for (r, _), event in self._done.items():
            if r == role:
                event.set()

    def _run(self, role: str, steps: dict, skip: tuple[str, ...] = ()) -> None:
        """Run this side's stages in their order (probe/stages.py), waiting for the other side where it must."""
        def before(name: str) -> None:
            waited = PAIR_WAITS.get((role, name))
            if waited is not None:
                stage(_WAITING[(role, name)])
                self._done[waited].wait(self.options.timeout)
            if (role, name) in _SAYS:
                stage(_SAYS[(role, name)])

        def after(name: str) -> None:
            if (role, name) in self._done:
                self._done[(role, name)].set()

        run_stages(stages(role, skip=skip), steps, before, after)
        stage("done")

    def _work_source(self) -> RawHost:
        try:
            s = self._open(self.source)
            self._src_session.append(s)
            stage("waiting for the fact models to be imported")
            from migcheck.facts.hostfiles import QEMU_CONF  # pydantic and the parsers: imported while the handshakes ran
            from migcheck.probe import gather as g

            plan = self.options.plan()

            raw = g.RawHost(spec=self.source.spec, uri=redact(self.source.uri))
            self._src_raw.append(raw)

            identity = []

            def guest() -> None:
                identity.append(g.gather_guest(s, raw, self.vm))
                self._src_domain.append(g.parse_domain_xml(raw.domain.live_xml))

            def cpus() -> None:  # the source's own view, to weigh the target's
                dom = self._src_domain[0]
                for cpu_xml in plan.source_cpus(dom):
                    g.compare_cpu(s, raw, dom, cpu_xml)

            self._run(SOURCE, {
                HOST_FACTS: lambda: g.gather_host(s, raw),
                GUEST: guest,
                DOMCAPS: lambda: g.gather_domcaps(s, raw, self._src_domain[0]),
                CPUS: cpus,
                HOST_FILES: lambda: g.gather_host_files(s, raw),
                PATHS: lambda: g.gather_paths(s, raw, plan.source_paths(self._src_domain[0], raw.files.get(QEMU_CONF))),
                IMAGES: lambda: g.gather_image_headers(s, raw, self._src_domain[0]),
                RESOLUTION: lambda: self._resolve_target(g, s, raw),
            }, skip=() if self.options.resolve_target else (RESOLUTION,))
            if identity:  # destroyed or migrated away after its facts were read: not the guest they describe
                g.recheck_guest(s, self.vm, identity[0])
                stage("done")
            return raw
        finally:
            self._release(SOURCE)

    def _resolve_target(self, g, s: HostSession, raw: RawHost) -> None:
        """The source's resolver on the name its QEMU will connect to (checks: network.migration-address)."""
        from migcheck.facts.hostfiles import QEMU_CONF
        from migcheck.facts.migration_address import names_to_resolve

        dst = self._dst_raw[0] if self._dst_raw else None
        if dst is None or (dst.hostname is None and "hostname" in dst.errors):
            raw.errors["resolve"] = "the target's hostname is not known"
            return
        g.gather_resolution(s, raw, names_to_resolve(dst.hostname, dst.files.get(QEMU_CONF), self.options.migrateuri))

    def _work_target(self) -> RawHost:
        try:
            s = self._open(self.target)
            stage("waiting for the fact models to be imported")
            from migcheck.facts.hostfiles import QEMU_CONF, TCP_FILES
            from migcheck.probe import gather as g

            plan = self.options.plan()
            raw = g.RawHost(spec=self.target.spec, uri=redact(self.target.uri))
            self._dst_raw.append(raw)
            doms: list[Domain] = []  # what the target is asked about

            def guest_files() -> None:
                if not self._src_domain:
                    raise Stop  # the source failed; its error is reported
                dom = self._src_domain[0]
                if self.options.target_xml:  # --xml: the target runs that definition, its paths are what it needs
                    dom = g.parse_domain_xml(self.options.target_xml)
                doms.append(dom)
                if g.needs_tcp_listeners(dom):
                    g.gather_host_files(s, raw, TCP_FILES)
                if g.needs_usb_devices(dom):
                    g.gather_usb_devices(s, raw)

            def cpus() -> None:  # the guest's CPU as the source runs it (not --xml's)
                src_raw, src_dom = self._src_raw[0], self._src_domain[0]
                own_model = g.host_model_name(next(iter(raw.domcaps_xml.values()), None))

                def expanded(cpu_xml: str) -> str | None:
                    """Asked of the source only when this target does not know the model (its session is open
                    until both sides are done); kept in its record."""
                    key = g.cpu_key(cpu_xml)
                    if key not in src_raw.cpu_expanded and self._src_session:
                        text = g.expand_cpu(self._src_session[0], src_dom, cpu_xml)
                        if text is not None:
                            src_raw.cpu_expanded[key] = text
                    return src_raw.cpu_expanded.get(key)

                for cpu_xml in plan.target_cpus(src_dom, src_raw.domcaps_xml):
                    g.compare_cpu(s, raw, src_dom, cpu_xml, lambda x=cpu_xml: expanded(x), own_model)

            self._run(TARGET, {
                HOST_FACTS: lambda: g.gather_host(s, raw),
                PEERS: lambda: g.gather_peers(s, raw),
                HOST_FILES: lambda: g.gather_host_files(s, raw),
                TARGET_OBJECTS: lambda: g.gather_target_objects(s, raw),
                GUEST_FILES: guest_files,
                DOMCAPS: lambda: g.gather_domcaps(s, raw, doms[0]),
                PATHS: lambda: g.gather_paths(s, raw, plan.target_paths(doms[0], raw.files.get(QEMU_CONF), raw.networks)),
                IMAGES: lambda: g.gather_image_headers(s, raw, doms[0]),
                CPUS: cpus,
            })
            return raw
        finally:
            self._release(TARGET)

    def result(self) -> PairProbe:
        """Both hosts' raw facts; ProbeError (one line naming the host) if either could not be probed."""
        deadline_join(self._workers, self.options.timeout, started=self.started)
        for s in self._sessions:
            threading.Thread(target=s.close, daemon=True).start()
        (src_worker, _), (dst_worker, _) = self._workers
        # a source still waiting for the target's answers did not hang: the target did, so it is named
        waiting_on_target = src_worker.error is not None and src_worker.stage == WAITING_FOR_TARGET
        for w, t in (self._workers[::-1] if waiting_on_target else self._workers):
            raise_failure(w, t)
        src_raw, dst_raw = src_worker.result, dst_worker.result
        if src_raw is None or src_raw.domain is None:  # never evaluate a half-probed source as if it were complete
            errors = self._src_raw[0].errors if self._src_raw else {}
            raise ProbeError(self.source.spec, self.source.scrub(
                "the probe ended without the guest's facts: "
                + ("; ".join(f"{k}: {v}" for k, v in errors.items()) or "no reason recorded")))
        return PairProbe(source=scrubbed(src_raw, self.source), target=scrubbed(dst_raw, self.target), domain=self.vm)


def start_probe_pair(source: HostTarget, target: HostTarget, vm: str, options: ProbeOptions) -> PendingPair:
    return PendingPair(source, target, vm, options)


def probe_pair(source: HostTarget, target: HostTarget, vm: str, options: ProbeOptions) -> PairProbe:
    """Probe both hosts and wait for the answers (see :class:`PendingPair`)."""
    return start_probe_pair(source, target, vm, options).result()
