"""Which libvirt URIs migcheck tunnels over its own SSH connection, and which it leaves to libvirt."""

import pytest

from migcheck.connectors.ssh import uses_proxy
from migcheck.connectors.tunnel import remote_uri


@pytest.mark.parametrize("uri,expected", [
    ("qemu+ssh://root@h/system?no_tty=1", "qemu:///system"),
    ("qemu+ssh://root@h/system", "qemu:///system"),
    ("qemu+ssh://u@h/session?no_tty=1", "qemu:///session"),
    ("qemu+ssh://root@h/system?keyfile=/k&no_tty=1", None),  # libvirt was asked for something: let it do it
    ("qemu+ssh://root@h/system?socket=/x", None),
    ("qemu+tls://h/system", None),
    ("qemu+libssh2://root@h/system", None),
    ("qemu:///system", None),
    ("xen+ssh://root@h/system", None),
])
def test_remote_uri(uri, expected):
    assert remote_uri(uri) == expected


def test_proxyjump_hosts_are_left_to_openssh(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("Host behind\n  ProxyJump bastion\nHost direct\n  HostName 10.0.0.9\n")
    assert uses_proxy("behind", str(cfg))
    assert not uses_proxy("direct", str(cfg))


def test_redacted_uris_keep_their_shape():
    from migcheck.connectors.hostspec import redact

    assert redact("qemu:///system") == "qemu:///system"
    assert redact("qemu+ssh://root:pw@h:2222/system?keyfile=/k") == "qemu+ssh://root@h:2222/system?keyfile=***"


def test_a_pump_ending_after_its_transport_is_gone_raises_nothing():
    """The probe closes each host's SSH connection as it ends; a pump thread closing its channel then met
    paramiko's EOFError, which Python printed as a traceback on migcheck's stderr (seen in a lab fault test)."""
    import socket

    from migcheck.connectors import tunnel

    class DeadChannel:
        closed = 0

        def close(self):
            self.closed += 1
            raise EOFError()

    a, b = socket.socketpair()
    chan = DeadChannel()
    try:
        tunnel._pump(lambda n: b"", a.sendall, a, chan)  # the remote side ended: the pump finishes
    finally:
        a.close()
        b.close()
    assert chan.closed == 1
