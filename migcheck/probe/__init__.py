"""Probe: gather raw facts from hosts (online) or from a saved snapshot (offline)."""
