"""Connectors: how migcheck reaches a host (libvirt RPC, SSH/SFTP, local files)."""
