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

`PrometheusServer.launch(workdir, config, *flags)` starts one with a config of the test's own
(rule files beside it, an Alertmanager to notify) and no backfill. `LoopbackServer` is the
process handling both share with tests/alertmanager_server.py.

`require_prometheus()` skips with the reason when the binaries are missing — except in CI
(CI=true), where it fails loudly instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

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
    require("Prometheus", unavailable())


def require(component: str, reason: str | None) -> None:
    """Skip when `reason` says the component cannot run — fail instead in CI (CI=true)."""
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"a real {component} is required in CI and cannot start: {reason}", pytrace=False)
    pytest.skip(f"real {component} unavailable (set CI=true to make this a failure): {reason}")


@dataclass
class LoopbackServer:
    """A server binary on a free loopback port, ready (GET /-/ready) until `stop()`."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path  # <name>.log in the workdir: stdout and stderr
    startup_seconds: float

    @classmethod
    def spawn(cls, name: str, argv: Sequence[str], port: int, workdir: Path) -> Self:
        """Run `argv` (which must listen on 127.0.0.1:`port`) and wait until it is ready."""
        log = workdir / f"{name}.log"
        began = time.monotonic()
        with log.open("wb") as output:
            process = subprocess.Popen(
                list(argv), cwd=workdir, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
            )
        server = cls(f"http://127.0.0.1:{port}", process, log, 0.0)
        try:
            server._wait_until_ready()
        except BaseException:
            server.stop()
            raise
        server.startup_seconds = time.monotonic() - began
        return server

    @property
    def address(self) -> str:
        """host:port, as other servers' configs name it."""
        return self.url.removeprefix("http://")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def _wait_until_ready(self) -> None:
        name = self.log.stem
        deadline = time.monotonic() + READY_WITHIN
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{name} exited during startup:\n{self.tail()}")
                try:
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"{name} not ready within {READY_WITHIN:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        """The end of the server's log, for a failing test's message."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class PrometheusServer(LoopbackServer):
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
        return cls.launch(workdir, CONFIG)

    @classmethod
    def launch(cls, workdir: Path, config: str, *flags: str) -> PrometheusServer:
        """Prometheus over workdir/data with `config` as workdir/prometheus.yml."""
        (workdir / "prometheus.yml").write_text(config)
        port = _free_port()
        argv = [
            str(shutil.which("prometheus")),
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--config.file={workdir / 'prometheus.yml'}",
            *flags,
        ]
        return cls.spawn("prometheus", argv, port, workdir)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    return _free_port()
