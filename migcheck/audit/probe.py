"""Probe a whole fleet: every host once, in parallel, with bounded concurrency and deadlines.

The stages and their order are probe_pair's (migcheck.probe.stages), run in two passes over
all hosts. Phase 1 (FLEET_FIRST), per host: host facts, the domain list, host files and target
objects, every guest (gather_guest), the domain capabilities, CPU comparisons and source paths
its own guests need from it as their source. Phase 2 (FLEET_SECOND), per host as a target, on
the connections still open from phase 1: the distinct questions of every guest that may move to
it (domain capabilities per domcaps key, stat per path, image headers, compareHypervisorCPU per
CPU definition), and as a source the names of its candidate targets. A guest's question is
asked with gather's ask_* functions, whose answer (value and errors,
migcheck.probe.answers.Answer) is kept per question so that each pair's view can be cut from
them (:func:`migcheck.audit.fleet.target_raw`).

A host that fails (unreachable, timeout) is recorded with one line naming the cause; the
audit goes on without it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from migcheck.audit.fleet import GuestProbe, HostProbe, source_raw
from migcheck.audit.inventory import Inventory
from migcheck.checks.registry import probe_plan
from migcheck.connectors.hostspec import HostTarget, parse_host, redact
from migcheck.connectors.libvirt_conn import one_line
from migcheck.facts.domain_xml import parse_domain_xml
from migcheck.facts.hostfiles import HOST_FILES, QEMU_CONF, TCP_FILES
from migcheck.facts.migration_address import names_to_resolve
from migcheck.probe import gather
from migcheck.probe.gather import ask_cpu, ask_domcaps, ask_image, ask_path, image_wanted
from migcheck.probe.session import HostSession, ProbeError, ProbeOptions, trace
from migcheck.probe.stages import (
    CPUS,
    DOMCAPS,
    FLEET_FIRST,
    FLEET_SECOND,
    GUEST,
    GUEST_FILES,
    HOST_FACTS,
    HOST_FILES as HOST_FILES_STAGE,
    IMAGES,
    PATHS,
    PEERS,
    RESOLUTION,
    TARGET_OBJECTS,
    run_stages,
)
from migcheck.probe.raw import RawHost, cpu_key

Progress = Callable[[str, int, int], None]  # (phase, done, total)


# ----------------------------------------------------------------- the scheduler


@dataclass
class _Task:
    name: str
    fn: Callable[["_Task"], object]
    stage: str = "waiting"
    result: object = None
    error: str | None = None
    started: float = 0.0
    finished: bool = False

    def note(self, what: str) -> None:
        """What the task does now: named if it misses its deadline, and a MIGCHECK_TRACE=1 line."""
        self.stage = what
        trace(what)


def run_bounded(tasks: list[_Task], jobs: int, timeout: float, progress: Progress | None = None,
                phase: str = "") -> None:
    """Run tasks in daemon threads, at most ``jobs`` at a time, each within ``timeout`` seconds.

    A task that overruns is marked failed and its slot given to the next one; its thread is left
    to finish on its own (a libvirt or ssh call cannot be interrupted) and whatever it produces
    later is ignored.
    """
    jobs = max(1, jobs)
    pending = list(tasks)
    running: list[_Task] = []
    done = 0
    cond = threading.Condition()
    finished_q: list[_Task] = []

    def body(t: _Task) -> None:
        try:
            res = t.fn(t)
            err = None
        except ProbeError as exc:
            res, err = None, exc.message
        except BaseException as exc:  # noqa: BLE001 - one line naming the host, never a traceback
            res, err = None, f"probe failed: {type(exc).__name__}: {one_line(str(exc))}"
        with cond:
            if not t.finished:  # not already given up on
                t.result, t.error, t.finished = res, err, True
                finished_q.append(t)
            cond.notify_all()

    while pending or running:
        while pending and len(running) < jobs:
            t = pending.pop(0)
            t.started = time.monotonic()
            t.stage = "starting"
            running.append(t)
            threading.Thread(target=body, args=(t,), daemon=True, name=f"audit-{t.name}").start()
        with cond:
            now = time.monotonic()
            next_deadline = min(t.started + timeout for t in running)
            if not finished_q:
                cond.wait(max(0.0, min(next_deadline - now, 0.5)))
            now = time.monotonic()
            for t in list(running):
                if t.finished:
                    running.remove(t)
                    done += 1
                elif now >= t.started + timeout:
                    t.finished = True
                    t.error = (f"no complete answer within {timeout:g}s, still {t.stage} "
                               "(use --timeout to allow more)")
                    running.remove(t)
                    done += 1
            finished_q.clear()
        if progress:
            progress(phase, done, len(tasks))


# ------------------------------------------------------------------- one host


def _stage_raw(target: HostTarget) -> RawHost:
    return RawHost(spec=target.spec, uri=redact(target.uri))


def probe_host_phase1(session: HostSession, host: HostProbe, task: _Task | None = None) -> HostProbe:
    """Host facts, all guests, and the answers the host's own guests need from it as their source
    (the first pass of probe/stages.py: FLEET_FIRST)."""
    def stage(what: str) -> None:
        if task is not None:
            task.note(what)

    target = session.target
    stage("opening the libvirt and SSH connections")
    session.open()
    base = _stage_raw(target)

    def host_stage(errors: str, fn: Callable[[], object]) -> Callable[[], None]:
        """A host-level stage: its facts stay in base, its errors go to the host's table ``errors``."""
        def step() -> None:
            fn()
            getattr(host, errors).update(base.errors)
            base.errors = {}
        return step

    def peers() -> None:
        host_stage("e_peers", lambda: gather.gather_peers(session, base))()
        if "peers" in host.e_peers:
            raise ProbeError(target.spec, f"cannot list its domains: {host.e_peers['peers']}")

    def guest_files() -> None:  # for every guest at once: fleet.py cuts them per guest
        gather.gather_host_files(session, base, TCP_FILES)
        gather.gather_usb_devices(session, base)

    def guests() -> None:
        host.base = base
        names = list(dict.fromkeys(p.name for p in base.peers))  # every domain, running or not
        for n, name in enumerate(names, 1):
            stage(f"gathering guest {n}/{len(names)} ({name!r})")
            host.guests[name] = probe_guest(session, target, name)

    def domcaps() -> None:
        stage("domain capabilities for its guests")
        for g in host.guests.values():
            if g.dom is not None and g.key not in host.domcaps:
                host.domcaps[g.key] = ask_domcaps(session, g.dom)

    def cpus() -> None:
        for g in host.guests.values():
            for xml in g.source_cpu_defs():
                k = g.cpu_question(xml, expanded=False)
                if k not in host.cpu:
                    host.cpu[k] = ask_cpu(session, g.dom, xml)

    def paths() -> None:
        stage("its guests' paths")
        conf = base.files.get(QEMU_CONF)
        for p in dict.fromkeys(p for g in host.guests.values() if g.dom is not None for p in g.source_paths(conf)):
            host.paths[p] = ask_path(session, p)

    def images() -> None:
        for p in dict.fromkeys(p for g in host.guests.values() for p in g.disk_files()):
            if image_wanted(host.paths[p].value if p in host.paths else None) and p not in host.images:
                host.images[p] = ask_image(session, p, host.paths[p].value)

    stage("gathering host facts")
    run_stages(FLEET_FIRST, {
        HOST_FACTS: host_stage("e_host", lambda: gather.gather_host(session, base)),
        PEERS: peers,
        HOST_FILES_STAGE: host_stage("e_files", lambda: gather.gather_host_files(session, base, HOST_FILES)),
        TARGET_OBJECTS: host_stage("e_objects", lambda: gather.gather_target_objects(session, base)),
        GUEST_FILES: host_stage("e_files", guest_files),
        GUEST: guests, DOMCAPS: domcaps, CPUS: cpus, PATHS: paths, IMAGES: images,
    })
    expanded: dict[tuple[str, str], str | None] = {}  # (domcaps key, definition) -> as this libvirt expands it
    for g in host.guests.values():  # what its guests' targets are asked in the second pass
        if g.dom is not None:
            g.cpu_defs = probe_plan().target_cpus(g.dom, source_raw(host, g).domcaps_xml)
            for xml in g.cpu_defs:  # for a target that does not know the model (gather.ask_cpu)
                if (g.key, xml) not in expanded:
                    expanded[(g.key, xml)] = gather.expand_cpu(session, g.dom, xml)
                if expanded[(g.key, xml)] is not None:
                    g.cpu_expanded[cpu_key(xml)] = expanded[(g.key, xml)]
    return host


def probe_guest(session: HostSession, target: HostTarget, name: str) -> GuestProbe:
    g = GuestProbe(name=name)
    raw = _stage_raw(target)
    try:
        g.identity = gather.gather_guest(session, raw, name)
        g.raw, g.errors = raw.domain, dict(raw.errors)
        g.dom = parse_domain_xml(raw.domain.live_xml)
    except ProbeError as exc:
        g.error = exc.message
    except Exception as exc:  # noqa: BLE001 - as probe_pair reports it
        g.error = f"probe failed: {type(exc).__name__}: {one_line(str(exc))}"
    return g


@dataclass
class Questions:
    domcaps: dict[str, GuestProbe]  # key -> a guest with that key
    cpu: dict[tuple[str, str, str, str], GuestProbe]  # GuestProbe.cpu_question -> a guest asking it
    paths: list[str]
    images: list[str]  # disk files: their header is read where the path exists


def questions_for(guests: Iterable[GuestProbe], qemu_conf: str | None, networks=None) -> Questions:
    """The distinct questions a target (with this qemu.conf and these networks) must answer for these guests."""
    q = Questions({}, {}, [], [])
    paths: dict[str, None] = {}
    images: dict[str, None] = {}
    for g in guests:
        if g.dom is None or g.error:
            continue
        q.domcaps.setdefault(g.key, g)
        for xml in g.cpu_defs:
            q.cpu.setdefault(g.cpu_question(xml), g)
        paths.update(dict.fromkeys(g.target_paths(qemu_conf, networks)))
        images.update(dict.fromkeys(g.disk_files()))
    q.paths = list(paths)
    q.images = list(images)
    return q


def answer_as_target(session: HostSession, host: HostProbe, q: Questions, task: _Task | None = None,
                     resolve: Callable[[], tuple[dict, dict[str, str]]] | None = None) -> dict:
    """Phase 2 (the second pass of probe/stages.py: FLEET_SECOND): the host's answers to the questions
    not answered yet, and, with ``resolve``, how it resolves its candidate targets' names. Returned,
    not stored, so a late answer after a timeout cannot change what the audit already evaluated."""
    out: dict = {"domcaps": {}, "cpu": {}, "paths": {}, "images": {}}

    def domcaps() -> None:
        todo = [(k, g) for k, g in q.domcaps.items() if k not in host.domcaps]
        for n, (k, g) in enumerate(todo, 1):
            if task:
                task.note(f"answering domain capabilities {n}/{len(todo)}")
            out["domcaps"][k] = ask_domcaps(session, g.dom)

    def cpus() -> None:
        todo = [(k, g) for k, g in q.cpu.items() if k not in host.cpu]
        for n, (k, g) in enumerate(todo, 1):
            if task:
                task.note(f"comparing CPU definition {n}/{len(todo)}")
            own = out["domcaps"].get(g.key) or host.domcaps.get(g.key)
            out["cpu"][k] = ask_cpu(session, g.dom, k[2], k[3] or None,
                                    gather.host_model_name(own.value if own is not None else None))

    def paths() -> None:
        todo = [p for p in q.paths if p not in host.paths]
        if task:
            task.note(f"checking {len(todo)} path(s)")
        for p in todo:
            out["paths"][p] = ask_path(session, p)

    def images() -> None:
        for p in q.images:
            a = out["paths"].get(p) or host.paths.get(p)
            if p not in host.images and image_wanted(a.value if a else None):
                out["images"][p] = ask_image(session, p, a.value)

    def resolution() -> None:
        if resolve is not None:
            if task:
                task.note("resolving the candidate targets' migration addresses")
            out["resolved"], out["e_resolve"] = resolve()

    run_stages(FLEET_SECOND, {DOMCAPS: domcaps, PATHS: paths, IMAGES: images, CPUS: cpus, RESOLUTION: resolution})
    return out


# ------------------------------------------------------------------ the fleet


def recheck_guests(session: HostSession, host: HostProbe, task: _Task | None = None) -> dict[str, str]:
    """The last question of phase 2 to a host, as its guests' source: are they still the guests phase 1
    read (one listAllDomains)? guest -> why not. A guest destroyed or migrated away mid-audit is unknown,
    not judged on facts that no longer describe it."""
    identities = {n: g.identity for n, g in host.guests.items() if g.error is None and g.identity is not None}
    if not identities:
        return {}
    if task:
        task.note("checking that its guests did not change")
    try:
        return gather.guests_changed(session.query_conn, identities)
    except Exception as exc:  # noqa: BLE001 - libvirt's error, or no connection left: each guest says why
        why = f"could not be checked again at the end of the audit: {one_line(str(exc))}"
        return {n: f"the guest {n!r} {why}" for n in identities}


def _scrub(host: HostProbe, target: HostTarget) -> None:
    s = target.scrub
    for d in (host.e_host, host.e_peers, host.e_files, host.e_objects, host.e_resolve):
        for k in d:
            d[k] = s(d[k])
    for g in host.guests.values():
        g.errors = {k: s(v) for k, v in g.errors.items()}
        g.error = s(g.error) if g.error else g.error
    for answers in (host.domcaps, host.cpu, host.paths, host.images):
        for a in answers.values():
            a.errors = {k: s(v) for k, v in a.errors.items()}
    host.error = s(host.error) if host.error else None
    host.target_error = s(host.target_error) if host.target_error else None


def _close_later(session: HostSession | None, only_readonly: bool = False) -> None:
    """Close in a daemon thread: a hung host must not hang the audit."""
    if session is None:
        return

    def close() -> None:
        try:
            if only_readonly:
                conn, session.conn = session.conn, None
                if conn is not None:
                    conn.close()
            else:
                session.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass

    threading.Thread(target=close, daemon=True).start()


def probe_fleet(inv: Inventory, options: ProbeOptions, jobs: int = 16, progress: Progress | None = None,
                audited: Callable[[GuestProbe], bool] = lambda g: True) -> dict[str, HostProbe]:
    """Every host of the inventory, probed once; guest-specific questions answered by each target."""
    targets = {name: parse_host(h.spec) for name, h in inv.hosts.items()}
    hosts = {name: HostProbe(name=name, spec=t.spec, uri=redact(t.uri)) for name, t in targets.items()}
    sessions: dict[str, HostSession] = {}

    def phase1(task: _Task) -> HostProbe:
        name = task.name
        private = HostProbe(name=name, spec=hosts[name].spec, uri=hosts[name].uri)
        s = HostSession(targets[name], options)
        sessions[name] = s
        t0 = time.monotonic()
        probe_host_phase1(s, private, task)
        private.seconds = time.monotonic() - t0
        return private

    tasks = [_Task(name, phase1) for name in hosts]
    run_bounded(tasks, jobs, options.timeout, progress, "probing hosts")
    for t in tasks:
        if t.error is None and isinstance(t.result, HostProbe):
            hosts[t.name] = t.result
            _close_later(sessions.get(t.name), only_readonly=True)  # phase 2 needs only the rw conn and SFTP
        else:
            hosts[t.name].error = t.error or "probe failed"
            _close_later(sessions.pop(t.name, None))

    sources_of: dict[str, list[str]] = {name: [] for name in hosts}
    for s_name in inv.hosts:
        for t_name in inv.candidates(s_name):
            sources_of[t_name].append(s_name)

    def phase2(task: _Task) -> dict:
        name = task.name
        host = hosts[name]
        sources = [hosts[s] for s in sources_of[name] if hosts[s].ok]
        q = questions_for((g for src in sources for g in src.guests.values() if audited(g)),
                          host.base.files.get(QEMU_CONF), host.base.networks)

        def resolve() -> tuple[dict, dict[str, str]]:  # this host as a source: its candidate targets' names, once each
            names: list[str] = []
            for t_name in inv.candidates(name):
                th = hosts[t_name]
                if th.ok:
                    names += names_to_resolve(th.base.hostname, th.base.files.get(QEMU_CONF), options.migrateuri)
            raw = _stage_raw(targets[name])
            gather.gather_resolution(sessions[name], raw, list(dict.fromkeys(names)))
            return raw.resolved, raw.errors

        out = answer_as_target(sessions[name], host, q, task, resolve if options.resolve_target else None)
        out["changed"] = recheck_guests(sessions[name], host, task)
        return out

    tasks2 = [_Task(name, phase2) for name, h in hosts.items() if h.ok]
    run_bounded(tasks2, jobs, options.timeout, progress, "asking targets")
    for t in tasks2:
        host = hosts[t.name]
        if t.error is None and isinstance(t.result, dict):
            host.domcaps.update(t.result["domcaps"])
            host.cpu.update(t.result["cpu"])
            host.paths.update(t.result["paths"])
            host.images.update(t.result["images"])
            if "resolved" in t.result:
                host.resolved, host.e_resolve = t.result["resolved"], t.result["e_resolve"]
            for vm, why in t.result.get("changed", {}).items():
                host.guests[vm].error = why
        else:
            host.target_error = t.error or "probe failed"
            host.e_resolve = {"resolve": host.target_error}
    for name in list(sessions):
        _close_later(sessions.pop(name))
    for name, host in hosts.items():
        _scrub(host, targets[name])
    return hosts
