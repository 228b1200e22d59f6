"""Subprocess helpers: every call has a timeout and a readable failure."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

# Environment for everything the lab starts inside a host: predictable, and free
# of the caller's LIBVIRT_DEFAULT_URI, SSH_AUTH_SOCK and the like.
CLEAN_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "USER": "root",
    "LOGNAME": "root",
}


class LabError(RuntimeError):
    """The lab could not be brought up, used or torn down."""


class LabCommandError(subprocess.CalledProcessError):
    """A command failed; str() names where it ran and shows its output."""

    def __init__(self, where: str, proc: subprocess.CompletedProcess):
        super().__init__(proc.returncode, proc.args, proc.stdout, proc.stderr)
        self.where = where

    def __str__(self) -> str:
        out = (self.stderr or "").strip() or (self.stdout or "").strip()
        return f"[{self.where}] {_fmt(self.cmd)} exited {self.returncode}: {out[-2000:]}"


def _fmt(argv: Sequence[str]) -> str:
    return " ".join(str(a) for a in argv)


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 30,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    where: str = "root-ns",
    cwd: str | os.PathLike | None = None,
) -> subprocess.CompletedProcess:
    """subprocess.run with text I/O, captured output and a mandatory timeout.

    A timeout becomes a CompletedProcess with returncode 124 (like coreutils'
    timeout) so callers handle it like any other failure.
    """
    argv = [str(a) for a in argv]
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL if input is None else None,
        )
    except subprocess.TimeoutExpired as exc:
        proc = subprocess.CompletedProcess(
            argv, 124, _text(exc.stdout), _text(exc.stderr) + f"\n(timed out after {timeout:.1f}s)"
        )
    except FileNotFoundError as exc:
        proc = subprocess.CompletedProcess(argv, 127, "", str(exc))
    if check and proc.returncode != 0:
        raise LabCommandError(where, proc)
    return proc


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data


def root_env() -> dict[str, str]:
    """Environment for client commands in the root namespace (the operator's view)."""
    env = dict(os.environ)
    env.pop("LIBVIRT_DEFAULT_URI", None)
    env.setdefault("HOME", "/root")
    return env
