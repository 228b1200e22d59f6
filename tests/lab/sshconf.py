"""SSH plumbing: keys, known_hosts, ssh_config and the one Include line.

Everything lives in the lab's state dir. The only edit outside it is a single
marked ``Include`` line at the top of root's ~/.ssh/config, removed on teardown.
"""

from __future__ import annotations

import json
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

from ._cmd import LabError, run

MARK = "# migcheck-lab"
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+-]+$")


def root_ssh_dir() -> Path:
    return Path(pwd.getpwuid(0).pw_dir) / ".ssh"


@dataclass(frozen=True)
class SshTarget:
    name: str
    ip: str
    host_pubkey: str  # "ssh-ed25519 AAAA..." or "" when not registered


def check_state_path(path: Path) -> None:
    """ssh_config and sshd_config take unquoted paths here: keep them plain."""
    if not _SAFE_PATH.match(str(path)):
        raise LabError(f"state dir {str(path)!r}: use a plain absolute path (no spaces or quotes)")


def keygen(path: Path, comment: str) -> None:
    """Create an ed25519 key pair at path (and path.pub) unless it exists."""
    if path.exists() and path.with_suffix(".pub").exists():
        return
    for p in (path, path.with_suffix(".pub")):
        p.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path], timeout=30)
    os.chmod(path, 0o600)


def public_key(path: Path) -> str:
    """'type base64' of a .pub file, without its comment."""
    fields = path.with_suffix(".pub").read_text().split()
    return " ".join(fields[:2])


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def client_config(state: Path, targets: list[SshTarget]) -> str:
    blocks = [f"# written by tests.lab for {state}; removed on teardown\n"]
    for t in targets:
        blocks.append(
            f"Host {t.name}\n"
            f"    HostName {t.ip}\n"
            f"    User root\n"
            f"    IdentityFile {state}/id_ed25519\n"
            f"    UserKnownHostsFile {state}/known_hosts\n"
            f"    GlobalKnownHostsFile /dev/null\n"
            f"    StrictHostKeyChecking yes\n"
            f"    IdentitiesOnly yes\n"
            f"    BatchMode yes\n"
            f"    ConnectTimeout 5\n"
        )
    return "\n".join(blocks)


def write_client_files(state: Path, targets: list[SshTarget]) -> None:
    """ssh_config, known_hosts, authorized_keys, and root-ssh/ (the lab hosts' ~/.ssh)."""
    keygen(state / "id_ed25519", "migcheck-lab")
    config = client_config(state, targets)
    _write(state / "ssh_config", config, 0o600)
    known = "".join(f"{t.name},{t.ip} {t.host_pubkey}\n" for t in targets if t.host_pubkey)
    _write(state / "known_hosts", known, 0o600)
    _write(state / "authorized_keys", public_key(state / "id_ed25519") + " migcheck-lab\n", 0o600)
    inner = state / "root-ssh"
    inner.mkdir(mode=0o700, exist_ok=True)
    os.chmod(inner, 0o700)
    _write(inner / "config", config, 0o600)


def include_line(state: Path) -> str:
    return f"Include {state}/ssh_config  {MARK}"


def add_include(state: Path) -> bool:
    """Put the Include line at the top of root's ssh config, leaving the rest as is.

    Returns True when the config file did not exist before (so teardown may
    delete it once it is empty again).
    """
    ssh_dir = root_ssh_dir()
    if not ssh_dir.exists():
        ssh_dir.mkdir(mode=0o700)
    cfg = ssh_dir / "config"
    old = cfg.read_text() if cfg.exists() else ""
    created = not cfg.exists() or _made_by_labs(old)
    mode = 0o600 if created else (cfg.stat().st_mode & 0o777)
    _write(cfg, include_line(state) + "\n" + _without_line(old, include_line(state)), mode)
    return created


def remove_include(state: Path, delete_if_empty: bool) -> None:
    cfg = root_ssh_dir() / "config"
    if not cfg.exists():
        return
    old = cfg.read_text()
    new = _without_line(old, include_line(state))
    if new == old:
        return
    if delete_if_empty and not new.strip():
        cfg.unlink()
    else:
        _write(cfg, new, cfg.stat().st_mode & 0o777)


def _made_by_labs(text: str) -> bool:
    """True when the config holds only Include lines of labs, one of which created it.

    Then whichever lab leaves last may delete the file, in any teardown order.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or not all(ln.startswith("Include ") and ln.endswith(MARK) for ln in lines):
        return False
    for ln in lines:
        state_file = Path(ln.split()[1]).parent / "lab.json"
        try:
            if json.loads(state_file.read_text()).get("ssh_config_created"):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def _without_line(text: str, line: str) -> str:
    return "".join(ln for ln in text.splitlines(keepends=True) if ln.strip() != line)


def include_present(state: Path) -> bool:
    cfg = root_ssh_dir() / "config"
    line = include_line(state)
    return cfg.exists() and any(ln.strip() == line for ln in cfg.read_text().splitlines())


def sshd_config(state: Path, ip: str, host_key: Path, log_level: str = "VERBOSE") -> str:
    """A complete sshd config for one lab host (the system's is not read)."""
    return (
        f"ListenAddress {ip}\n"
        f"HostKey {host_key}\n"
        "PidFile /run/sshd.pid\n"
        f"AuthorizedKeysFile {state}/authorized_keys\n"
        # /var/tmp is world-writable: StrictModes would refuse the keys file.
        "StrictModes no\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM yes\n"
        "UseDNS no\n"
        "PrintMotd no\n"
        f"LogLevel {log_level}\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n"
    )
