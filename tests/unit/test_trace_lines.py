"""MIGCHECK_TRACE=1 lines stay whole when several host threads trace at once (a lab test reads them)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

TRACING = textwrap.dedent("""
    import sys, threading
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    from migcheck.probe import session
    session._TRACE_START = 0.0
    go = threading.Barrier(8)

    def work(n):
        go.wait()
        for i in range(2000):
            session.trace(f"stage {n}/{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
""")


def test_trace_lines_from_many_threads_stay_whole() -> None:
    p = subprocess.run([sys.executable, "-c", TRACING], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stderr.split("\n")
    assert lines[-1] == ""
    bad = [ln for ln in lines[:-1] if not ln.startswith("migcheck trace ") or ln.count("migcheck trace") != 1]
    assert not bad, bad[:5]
    assert len(lines) - 1 == 8 * 2000
