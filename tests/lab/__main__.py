"""`python -m tests.lab up|down|status|exec` for the Makefile and for poking around."""

from __future__ import annotations

import argparse
import subprocess
import sys

from ._cmd import CLEAN_ENV, LabError
from .lab import DEFAULT_PREFIX, DEFAULT_SUBNET, Lab, default_state_dir, list_netns
from .spec import HostSpec
from .vroot import BACKPORTS


def _lab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help="netns/bridge name prefix (default %(default)s)")
    p.add_argument("--state-dir", default=None,
                   help="state dir (default $MIGCHECK_LAB_DIR or /var/tmp/migcheck-lab[-PREFIX])")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="bring lab hosts up and leave them running")
    up.add_argument("--hosts", default="mc-a,mc-b",
                    help="comma-separated host names, NAME@backports for a libvirt 11.3/QEMU 10.0 host "
                         "(default %(default)s)")
    up.add_argument("--subnet", default=DEFAULT_SUBNET, help="inside 10.251.77.0/24 (default %(default)s)")
    up.add_argument("--timeout", type=float, default=120, help="readiness timeout per bring-up, seconds")
    _lab_args(up)
    down = sub.add_parser("down", help="tear the lab down (also after a crash)")
    _lab_args(down)
    st = sub.add_parser("status", help="show the lab's hosts; exit 1 unless all are healthy")
    _lab_args(st)
    ex = sub.add_parser("exec", help="run a command inside a lab host: exec HOST -- CMD ARGS...")
    ex.add_argument("host")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.add_argument("--timeout", type=float, default=600)
    _lab_args(ex)
    args = ap.parse_args(argv)
    try:
        return {"up": _up, "down": _down, "status": _status, "exec": _exec}[args.cmd](args)
    except (LabError, KeyError) as exc:
        print(f"lab: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 1


def _up(args: argparse.Namespace) -> int:
    specs = [_spec(n.strip()) for n in args.hosts.split(",") if n.strip()]
    lab = Lab(specs, prefix=args.prefix, subnet=args.subnet, state_dir=args.state_dir,
              ready_timeout=args.timeout).up()
    print(f"lab up in {lab.up_seconds}s, {'KVM' if lab.kvm else 'TCG (no usable KVM)'}, state in {lab.state_dir}")
    for h in lab.hosts:
        print(f"  {h.name:<10} {h.ip:<15} {h.uri}   netns {h.netns}")
    first = lab.hosts[0]
    print(f"try: ssh {first.name} hostname\n     virsh -c {first.uri} list --all\n"
          f"     python -m tests.lab exec {first.name} -- virsh list\n     python -m tests.lab down")
    return 0


def _spec(word: str) -> HostSpec:
    """NAME, or NAME@backports for a host running libvirt/QEMU from bookworm-backports."""
    name, _, flavor = word.partition("@")
    if flavor and flavor != "backports":
        raise LabError(f"{word}: the only host flavor is @backports")
    return HostSpec(name, root=BACKPORTS if flavor else None)


def _down(args: argparse.Namespace) -> int:
    Lab.down_all(args.prefix, args.state_dir)
    print(f"lab {args.prefix} down; state dir {args.state_dir or default_state_dir(args.prefix)} cleaned")
    return 0


def _status(args: argparse.Namespace) -> int:
    stray = [n for n in list_netns() if n.startswith(args.prefix + "-")]
    try:
        lab = Lab.attach(args.prefix, args.state_dir)
    except LabError as exc:
        print(f"no lab: {exc}")
        if stray:
            print(f"stray namespaces (run `python -m tests.lab down`): {' '.join(stray)}")
        return 1
    ok = True
    print(f"lab {lab.prefix}: {'KVM' if lab.kvm else 'TCG'}, state in {lab.state_dir}")
    for row in lab.status():
        healthy = row["alive"] and row["libvirt"] in ("ok", "-")
        ok &= healthy
        print(f"  {row['name']:<10} {row['ip']:<15} {'up' if row['alive'] else 'DOWN':<5} "
              f"libvirt: {row['libvirt']}")
    return 0 if ok else 1


def _exec(args: argparse.Namespace) -> int:
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        print("usage: python -m tests.lab exec HOST -- CMD ARGS...", file=sys.stderr)
        return 2
    host = Lab.attach(args.prefix, args.state_dir).host(args.host)
    if not host.alive():
        raise LabError(f"{host.name} is not running")
    try:
        return subprocess.run(host.nsenter_argv(cmd), env=CLEAN_ENV, timeout=args.timeout).returncode
    except subprocess.TimeoutExpired:
        print(f"lab: timed out after {args.timeout}s", file=sys.stderr)
        return 124


if __name__ == "__main__":
    sys.exit(main())
