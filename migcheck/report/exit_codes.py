"""migcheck's exit codes, in a module of their own: the command line needs them before anything else."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    BLOCKED = 1
    USAGE = 2
    UNKNOWN = 3
    RISKY = 4
    MIGRATION_FAILED = 5  # migcheck migrate: allowed, ran virsh migrate, and it failed
