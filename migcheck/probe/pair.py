"""Probe a source and a target host for one guest: both at once, each fact once.

:func:`start_probe_pair` returns at once: each host's worker thread opens its
connections (paramiko and libvirt only, :mod:`migcheck.probe.session`) and only
then imports the fact models and gathering code.  ``migcheck SRC DST VM`` uses
the time the SSH handshakes take to import the checks.

The target waits for the source only where it must: for the guest's XML
(before its guest-specific questions) and for the source's domain capabilities
(before judging a host-passthrough CPU).
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

if TYPE_CHECKING:
    from migcheck.facts.models import Domain
    from migcheck.probe.raw import RawHost


@dataclass
class PairProbe:
    source: "RawHost"
    target: "RawHost"
    domain: str


WAITING_FOR_TARGET = "waiting for the target's hostname"


class PendingPair:
    """Both hosts' probes, running; :meth:`result` waits for them (within the probe's deadline)."""

    def __init__(self, source: HostTarget, target: HostTarget, vm: str, options: ProbeOptions):
        if options.plan is None:
            raise ValueError("probe_pair needs a plan: ProbeOptions(plan=migcheck.checks.registry.probe_plan)")
        self.source, self.target, self.vm, self.options = source, target, vm, options
        self.started = time.monotonic()
        self._src_raw: list[RawHost] = []
        self._source_done = threading.Event()  # the guest's XML is known (or the source failed)
        self._source_cpu_ready = threading.Event()  # the source's domain capabilities too
        self._src_domain: list[Domain] = []
        self._target_named = threading.Event()  # the target's hostname and qemu.conf are known (or it failed)
        self._dst_raw: list[RawHost] = []
        self._sessions: list[HostSession] = []
        self._workers = [(HostWorker(self._work_source, "source"), source),
                         (HostWorker(self._work_target, "target"), target)]
        for w, _ in self._workers:
            w.start()

    def _open(self, target: HostTarget) -> HostSession:
        s = HostSession(target, self.options)
        self._sessions.append(s)
        return s.open()

    def _work_source(self) -> RawHost:
        try:
            s = self._open(self.source)
            stage("waiting for the fact models to be imported")
            from migcheck.facts.hostfiles import QEMU_CONF  # pydantic and the parsers: imported while the handshakes ran
            from migcheck.probe import gather as g

            plan = self.options.plan()

            raw = g.RawHost(spec=self.source.spec, uri=redact(self.source.uri))
            self._src_raw.append(raw)
            stage("gathering host facts")
            g.gather_host(s, raw)
            g.gather_guest(s, raw, self.vm)
            dom = g.parse_domain_xml(raw.domain.live_xml)
            self._src_domain.append(dom)
            self._source_done.set()  # the target can start its guest-specific work now
            stage("asking for domain capabilities and CPU comparisons")
            g.gather_domcaps(s, raw, dom)
            for cpu_xml in plan.source_cpus(dom):  # the source's own view, to weigh the target's
                g.compare_cpu(s, raw, dom, cpu_xml)
            for cpu_xml in plan.target_cpus(dom, raw.domcaps_xml):  # for a target that does not know the model
                if (expanded := g.expand_cpu(s, dom, cpu_xml)) is not None:
                    raw.cpu_expanded[g.cpu_key(cpu_xml)] = expanded
            self._source_cpu_ready.set()
            stage("reading host files and paths")
            g.gather_host_files(s, raw)
            g.gather_paths(s, raw, plan.source_paths(dom, raw.files.get(QEMU_CONF)))
            g.gather_image_headers(s, raw, dom)
            if self.options.resolve_target:
                stage(WAITING_FOR_TARGET)
                self._target_named.wait(self.options.timeout)
                stage("resolving the target's migration address here")
                self._resolve_target(g, s, raw)
            stage("done")
            return raw
        finally:
            self._source_done.set()
            self._source_cpu_ready.set()

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
        except BaseException:
            self._target_named.set()
            raise
        stage("waiting for the fact models to be imported")
        from migcheck.facts.hostfiles import QEMU_CONF, TCP_FILES
        from migcheck.probe import gather as g

        plan = self.options.plan()
        raw = g.RawHost(spec=self.target.spec, uri=redact(self.target.uri))
        self._dst_raw.append(raw)
        stage("gathering host facts")
        try:
            g.gather_host(s, raw)
            g.gather_peers(s, raw)
            g.gather_host_files(s, raw)
        finally:
            self._target_named.set()
        g.gather_target_objects(s, raw)
        stage("waiting for the source's answers")
        self._source_done.wait(self.options.timeout)
        if not self._src_domain:
            return raw  # the source failed; its error is reported
        dom = self._src_domain[0]
        if self.options.target_xml:  # --xml: the target runs that definition, its paths are what it needs
            dom = g.parse_domain_xml(self.options.target_xml)
        stage("asking for domain capabilities, paths and image headers")
        if g.needs_tcp_listeners(dom):
            g.gather_host_files(s, raw, TCP_FILES)
        if g.needs_usb_devices(dom):
            g.gather_usb_devices(s, raw)
        g.gather_domcaps(s, raw, dom)
        g.gather_paths(s, raw, plan.target_paths(dom, raw.files.get(QEMU_CONF), raw.networks))
        g.gather_image_headers(s, raw, dom)
        stage("waiting for the source's CPU")
        self._source_cpu_ready.wait(self.options.timeout)
        stage("comparing CPUs")
        src_raw, src_dom = self._src_raw[0], self._src_domain[0]
        own_model = g.host_model_name(raw.domcaps_xml.get(g.domcaps_key(src_dom.emulator, src_dom.arch,
                                                                          src_dom.machine, src_dom.virt_type)))
        for cpu_xml in plan.target_cpus(src_dom, src_raw.domcaps_xml):
            g.compare_cpu(s, raw, src_dom, cpu_xml, src_raw.cpu_expanded.get(g.cpu_key(cpu_xml)), own_model)
        stage("done")
        return raw

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
