"""A real Prometheus Alertmanager for tests (DESIGN.md "Real components").

Debian's `prometheus-alertmanager` package (`make tools`) installs the binary as
/usr/bin/prometheus-alertmanager; upstream's tarball calls it `alertmanager` — either is used.
`AlertmanagerServer.start(workdir, config)` writes `config` (alertmanager.yml), starts the
server on a free loopback port with its state in workdir and clustering off
(`--cluster.listen-address=` — otherwise it gossips on 0.0.0.0:9094 and waits for peers
before notifying), and polls /-/ready (bounded). `stop()` ends the process.

For a test to see notifications within seconds, route with `group_wait: 0s` and
`group_interval` / `repeat_interval` of 1s (an unchanged group is then re-sent every
`repeat_interval`, rounded up to the next group flush — about every 2 s with 0.25).

`require_alertmanager()` skips with the reason when the binary is missing — except in CI
(CI=true), where it fails loudly instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.prometheus_server import LoopbackServer, free_port, require

BINARIES = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's


def binary() -> str | None:
    for name in BINARIES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def require_alertmanager() -> None:
    missing = None if binary() else "neither `prometheus-alertmanager` nor `alertmanager` is on PATH"
    require(
        "Alertmanager", missing and f"{missing} (run `make tools`: Debian package prometheus-alertmanager)"
    )


class AlertmanagerServer(LoopbackServer):
    @classmethod
    def start(cls, workdir: Path, config: str) -> AlertmanagerServer:
        path = binary()
        if path is None:
            raise RuntimeError("no Alertmanager binary on PATH; call require_alertmanager() first")
        (workdir / "alertmanager.yml").write_text(config)
        port = free_port()
        argv = [
            path,
            f"--config.file={workdir / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ]
        return cls.spawn("alertmanager", argv, port, workdir)
