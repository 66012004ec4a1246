"""`tidegate serve` as a real process for tests: write controller.yaml, start, wait, stop.

Each replica is the installed console script in its own process (so SIGKILL, SIGSTOP and
SIGTERM mean what they mean in production), on a free loopback port, logging JSON lines to
a file the test can read after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.prometheus_server import free_port

READY_WITHIN = 30.0
TIDEGATE = str(Path(sys.executable).parent / "tidegate")
TOKENS = {
    "viewer": "viewer-token-0123456789abcdef",
    "operator": "operator-token-0123456789abcdef",
    "admin": "admin-token-0123456789abcdef",
}
TOKENS_ENV = ",".join(f"{role}-person:{role}:{token}" for role, token in TOKENS.items())
GENERIC_SECRET = "generic-webhook-secret-0123456789"
GENERIC_ENDPOINT = {"name": "generic", "vendor": "generic", "secret_env": "GENERIC_SECRET"}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@dataclass
class Replica:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        workdir: Path,
        name: str,
        *,
        store: str,
        rollouts: Path | None = None,
        lease_ttl: str = "4s",
        lease_renew: str = "1s",
        webhooks: list[dict[str, str]] | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> Replica:
        port = free_port()
        config: dict[str, Any] = {
            "listen": f"127.0.0.1:{port}",
            "store": store,
            "replica": name,
            "lease": {"ttl": lease_ttl, "renew": lease_renew},
            "poll": "100ms",
            "rescan": "1s",
            "webhooks": webhooks or [GENERIC_ENDPOINT],
        }
        if rollouts is not None:
            config["rollouts"] = str(rollouts)
        config.update(extra or {})
        path = workdir / f"controller-{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        log = workdir / f"{name}.log"
        full_env = {
            **os.environ,
            "TIDEGATE_TOKENS": TOKENS_ENV,
            "GENERIC_SECRET": GENERIC_SECRET,
            **(env or {}),
        }
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [TIDEGATE, "serve", "--config", str(path)],
                cwd=workdir,
                env=full_env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        replica = cls(name, f"http://127.0.0.1:{port}", process, log, env or {})
        if wait:
            replica.wait_ready()
        return replica

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"replica {self.name} exited {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"replica {self.name} not ready within {READY_WITHIN}s:\n{self.tail()}")

    def terminate(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def get(self, path: str, role: str = "viewer") -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers=auth(role), timeout=15.0)

    def post(self, path: str, body: Any = None, role: str = "operator", **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=auth(role), timeout=15.0, **kwargs)
