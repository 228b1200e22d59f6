"""Which check predicts a given libvirt/QEMU migration error text.

Used by ``migcheck migrate`` when a migration fails anyway (to say whether a
check matched, and to record misses), and by the lab pairing
(``tests/lab/pairing.py``) to prove that a blocked verdict names the check the
real failure belongs to. Each check names the texts its failure shows as on its
decorator (``@check(..., explains={rank: regex})``); :data:`ERROR_RULES` is those
patterns over every check, lowest rank first. Some texts belong to more than one
check (a socket that cannot bind may be a console's or a VNC server's):
``rules_for_error`` gives every candidate, in that order.
"""

from __future__ import annotations

import re

from migcheck.checks.registry import all_checks


def _error_rules() -> list[tuple[re.Pattern[str], str]]:
    ranked = sorted((rank, chk.id, pattern) for chk in all_checks() for rank, pattern in chk.explains)
    return [(re.compile(pattern, re.I), check_id) for _, check_id, pattern in ranked]


ERROR_RULES: list[tuple[re.Pattern[str], str]] = _error_rules()


def rules_for_error(text: str) -> list[str]:
    """Every check whose failure this error text can be, most specific first."""
    return list(dict.fromkeys(rule for pattern, rule in ERROR_RULES if pattern.search(text)))


def rule_for_error(text: str) -> str | None:
    """The first check this error text belongs to, or None: no check predicts it."""
    rules = rules_for_error(text)
    return rules[0] if rules else None
