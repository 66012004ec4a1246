"""Run the real `tidegate` console script on a pseudo-terminal, as a person at a terminal would.

stdin, stdout and stderr are the slave side of a pty (120×60), so `isatty()` is true and rich
draws as it would in a terminal; the test reads everything from the master side. Optionally
Ctrl-C (SIGINT) is sent once some text has appeared a number of times.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
COLUMNS, ROWS = 120, 60


@dataclass(frozen=True)
class Session:
    code: int
    text: str  # what was written, ANSI codes removed
    raw: bytes


@dataclass(frozen=True)
class Interrupt:
    """Send SIGINT once `text` has been drawn `times` times."""

    text: str
    times: int = 1


def in_terminal(
    tidegate: Path,
    cwd: Path,
    *args: str,
    env: dict[str, str],
    interrupt: Interrupt | None = None,
    timeout: float = 60.0,
) -> Session:
    """The exit code and everything written to the terminal."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    process = subprocess.Popen(
        [str(tidegate), *args],
        cwd=cwd,
        env={**env, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    sent = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer of the terminal has exited
                    break
                if not chunk:
                    break
                output += chunk
            if interrupt and not sent and clean(output).count(interrupt.text) >= interrupt.times:
                process.send_signal(signal.SIGINT)
                sent = True
        else:
            raise AssertionError(f"tidegate {' '.join(args)} did not finish:\n{clean(output)}")
        return Session(process.wait(timeout=10), clean(output), bytes(output))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def clean(output: bytes | bytearray) -> str:
    return ANSI.sub("", output.decode("utf-8", errors="replace")).replace("\r\n", "\n")
