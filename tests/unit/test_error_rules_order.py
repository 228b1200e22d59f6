"""Which checks an error text belongs to, and in which order, stays what it was.

``rules_for_error`` returns every candidate check in table order and
``migcheck migrate`` reports the first; some texts belong to several checks
("Cannot get interface MTU": network.bridge-missing, then network.libvirt-network).
``data/error_texts.json`` records the candidates for a fixed set of texts: every
error-like string in tests/, the README and the check pages, every line of the
shared MIGRATION-FACTS.md and LAB.md, and one text built from each alternative of
each pattern; and for every two table rows, the candidates of their texts joined
(which pins the order between any two rows, not only between those that share
a real text). It was recorded before the patterns moved onto the checks'
decorators (issue 13, item 5b).

A deliberate change to the rules changes these results: rewrite the recorded
candidates from the current code with ``python -m tests.unit.test_error_rules_order``
and read the diff of the data file.
"""

from __future__ import annotations

import json
from pathlib import Path

from migcheck.checks.errors import rule_for_error, rules_for_error

DATA = Path(__file__).parent / "data" / "error_texts.json"
SAMPLES = json.loads(DATA.read_text())
JOIN = " / "


def test_there_are_many_samples_some_with_several_candidates():
    texts = SAMPLES["texts"]
    assert len(texts) > 500
    assert sum(len(t["rules"]) > 1 for t in texts) > 50
    assert sum(not t["rules"] for t in texts) > 50  # texts no check predicts stay so


def test_every_sample_text_has_its_recorded_candidates_in_order():
    wrong = [(t["text"], t["rules"], rules_for_error(t["text"])) for t in SAMPLES["texts"]
             if rules_for_error(t["text"]) != t["rules"]]
    assert not wrong, "\n".join(f"{text!r}: was {old}, now {new}" for text, old, new in wrong[:20])
    for t in SAMPLES["texts"]:
        assert rule_for_error(t["text"]) == (t["rules"][0] if t["rules"] else None)


def test_any_two_rows_keep_their_order():
    rows = SAMPLES["rows"]
    wrong = [(rows[i], rows[j], old, rules_for_error(rows[i] + JOIN + rows[j])) for i, j, old in SAMPLES["pairs"]
             if rules_for_error(rows[i] + JOIN + rows[j]) != old]
    assert not wrong, "\n".join(f"{a!r} + {b!r}: was {old}, now {new}" for a, b, old, new in wrong[:20])


def _rewrite() -> None:
    """Record the current code's candidates for the same texts (one entry a line, so the diff reads)."""
    rows = SAMPLES["rows"]
    texts = [{**t, "rules": rules_for_error(t["text"])} for t in SAMPLES["texts"]]
    pairs = [[i, j, rules_for_error(rows[i] + JOIN + rows[j])] for i, j, _ in SAMPLES["pairs"]]
    dump = lambda xs: ",\n".join(json.dumps(x, ensure_ascii=False) for x in xs)  # noqa: E731
    DATA.write_text(f'{{"texts": [\n{dump(texts)}\n],\n"rows": [\n{dump(rows)}\n],\n"pairs": [\n{dump(pairs)}\n]}}\n')


if __name__ == "__main__":
    _rewrite()
