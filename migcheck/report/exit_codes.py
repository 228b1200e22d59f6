"""migcheck's exit codes, in a module of their own: the command line needs them before anything else."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    BLOCKED = 1
    USAGE = 2
    UNKNOWN = 3
    RISKY = 4
    MIGRATION_FAILED = 5  # migcheck migrate: allowed, ran virsh migrate, and it failed


# What each code means, for `migcheck check --help` (and the README's table, which a test compares).
MEANING = {
    ExitCode.OK: "ok: every check ran and none found a blocker or a risk",
    ExitCode.BLOCKED: "blocked: at least one check is certain the migration will fail",
    ExitCode.USAGE: "usage error: bad arguments; one line says what is wrong; nothing was contacted",
    ExitCode.UNKNOWN: "unknown: a host could not be probed, or a check could not run (missing fact, crash)",
    ExitCode.RISKY: "risky: it may fail or endanger data depending on what migcheck cannot see",
    ExitCode.MIGRATION_FAILED: "(migcheck migrate) allowed, and virsh migrate failed anyway",
}


def exit_codes_help(codes: tuple[ExitCode, ...] = (ExitCode.OK, ExitCode.BLOCKED, ExitCode.USAGE, ExitCode.UNKNOWN,
                                                   ExitCode.RISKY)) -> str:
    """The "Exit codes:" paragraph of a command's help, one code a line."""
    return "Exit codes:\n" + "\n".join(f"{int(c)} {MEANING[c]}" for c in codes)
