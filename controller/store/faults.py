"""Fault injection for the crash test: die by SIGKILL right after the N-th journal commit.

Each store method that commits journal state (create_rollout, commit_transition,
finish_intent, append_audit) calls `journal_point(name)` just after its commit. With
`TIDEGATE_CRASH_AT=N` (an integer) the N-th point in this process kills the process with
SIGKILL — no cleanup, no atexit, exactly like a power cut after a durable write. With
`TIDEGATE_CRASH_LOG=PATH` each point appends "ORDINAL NAME" to PATH first, so a test can
count the points of a full run, then crash at each one. Unset (or not an integer): no effect.
"""

from __future__ import annotations

import itertools
import os
import signal

CRASH_AT_ENV = "TIDEGATE_CRASH_AT"
CRASH_LOG_ENV = "TIDEGATE_CRASH_LOG"

_ordinals = itertools.count(1)


def journal_point(name: str) -> None:
    ordinal = next(_ordinals)
    log_path = os.environ.get(CRASH_LOG_ENV)
    if log_path:
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"{ordinal} {name}\n")
    crash_at = os.environ.get(CRASH_AT_ENV, "").strip()
    if crash_at.isdigit() and int(crash_at) == ordinal:
        os.kill(os.getpid(), signal.SIGKILL)
