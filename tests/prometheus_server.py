"""A real Prometheus for tests, with known history backfilled (DESIGN.md "Real components").

Debian's `prometheus` package (`make tools`) gives /usr/bin/prometheus and /usr/bin/promtool.
`PrometheusServer.start(workdir, openmetrics)` writes the OpenMetrics text (which must end with
`# EOF`), turns it into TSDB blocks with `promtool tsdb create-blocks-from openmetrics`, starts
`prometheus` on a free loopback port over that data directory with a config that scrapes
nothing, and polls /-/ready (bounded). `stop()` ends the process.

Backfilling, as verified with Prometheus 2.42: the blocks are picked up at start ("Found
healthy block" in the log) and queryable at once; since nothing is scraped, the head block is
empty, so even samples from minutes ago load without overlap. They must lie within the
retention (15 d by default) or the first compaction deletes them; the tests use data a few
hours old.

`require_prometheus()` skips with the reason when the binaries are missing — except in CI
(CI=true), where it fails loudly instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

READY_WITHIN = 30.0  # seconds; a fresh server with a few blocks is ready in well under 1 s here
CONFIG = "global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\nscrape_configs: []\n"


def unavailable() -> str | None:
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH (run `make tools`: Debian package prometheus)"
    return None


def require_prometheus() -> None:
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"a real Prometheus is required in CI and cannot start: {reason}", pytrace=False)
    pytest.skip(f"real Prometheus unavailable (set CI=true to make this a failure): {reason}")


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    startup_seconds: float

    @classmethod
    def start(cls, workdir: Path, openmetrics: str) -> PrometheusServer:
        data, source = workdir / "data", workdir / "backfill.om"
        source.write_text(openmetrics)
        subprocess.run(
            [
                str(shutil.which("promtool")),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "-q",
                str(source),
                str(data),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        config = workdir / "prometheus.yml"
        config.write_text(CONFIG)
        port = _free_port()
        log = workdir / "prometheus.log"
        began = time.monotonic()
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    str(shutil.which("prometheus")),
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    f"--config.file={config}",
                ],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        server = cls(f"http://127.0.0.1:{port}", process, log, 0.0)
        try:
            server._wait_until_ready()
        except BaseException:
            server.stop()
            raise
        server.startup_seconds = time.monotonic() - began
        return server

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"prometheus exited during startup:\n{self._tail()}")
                try:
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"prometheus not ready within {READY_WITHIN:.0f} s:\n{self._tail()}")

    def _tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    return _free_port()
