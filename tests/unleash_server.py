"""A real open-source Unleash for tests (DESIGN.md "Real components"; STYLE.md §8).

Installed by `make unleash`: the npm package `unleash-server`, pinned by
tests/unleash/package-lock.json, into tests/unleash/node_modules with the machine's Node.js
(`npm ci --ignore-scripts`: no install script runs, so no telemetry beacon and no native build).

`UnleashServer.start()` creates a fresh database `unleash_test_<hex>` on the local PostgreSQL,
starts `node …/unleash-server/dist/server.js` on a free loopback port with an admin API token
given through INIT_ADMIN_API_TOKENS, and polls (bounded) until the admin API answers that
token. `stop()` ends the process and drops the database.

`shared_unleash(run_dir)` does that once per test run, not once per pytest-xdist worker: the
first worker to arrive starts the server and leaves its address in `run_dir` (under a file
lock), later ones reuse it, and the last to leave stops it. (xdist's `loadgroup` would pin
the tests to one worker instead, but under pytest 9.2 it groups nothing.)

`require_unleash()` says what is missing (Node.js ≥ 20, the npm package, PostgreSQL): the test
is skipped with that reason — except in CI (CI=true), where it fails loudly instead.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.conftest import POSTGRES_URL, postgres_unreachable

PACKAGE = Path(__file__).resolve().parent / "unleash"
SERVER_JS = PACKAGE / "node_modules" / "unleash-server" / "dist" / "server.js"
NODE_MAJOR = 20  # unleash-server 7.5 needs Node.js >= 20 (7.6 wants 22)
READY_WITHIN = 120.0  # seconds; a fresh database runs every migration first (about 6 s here)


def unavailable() -> str | None:
    """Why a real Unleash cannot be started here, or None when it can."""
    node = shutil.which("node")
    if node is None:
        return "Node.js is not installed (`node` is not on PATH)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if not major.isdecimal() or int(major) < NODE_MAJOR:
        return f"Node.js {version or '?'} is too old for unleash-server 7.5 (needs {NODE_MAJOR}+)"
    if not SERVER_JS.is_file():
        return f"unleash-server is not installed in {PACKAGE.name}/ (run `make unleash`)"
    reason = postgres_unreachable()
    return f"PostgreSQL is unreachable: {reason}" if reason else None


def require_unleash() -> None:
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"a real Unleash is required in CI and cannot start: {reason}", pytrace=False)
    pytest.skip(f"real Unleash unavailable (set CI=true to make this a failure): {reason}")


@dataclass
class UnleashServer:
    url: str
    token: str  # an admin API token, `*:*.<random>`
    database: str
    pid: int
    log: str
    startup_seconds: float

    @classmethod
    def start(cls, workdir: Path) -> UnleashServer:
        database = f"unleash_test_{secrets.token_hex(6)}"
        _admin(f'CREATE DATABASE "{database}"')
        token = f"*:*.{secrets.token_hex(24)}"
        port = _free_port()
        log = workdir / "unleash.log"
        began = time.monotonic()
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(shutil.which("node")), str(SERVER_JS)],
                cwd=workdir,
                env=_environment(database, port, token, workdir),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        _children[process.pid] = process
        server = cls(f"http://127.0.0.1:{port}", token, database, process.pid, str(log), 0.0)
        try:
            server._wait_until_ready()
        except BaseException:
            server.stop()
            raise
        server.startup_seconds = time.monotonic() - began
        return server

    def stop(self) -> None:
        """End the server (whichever worker started it) and drop its database."""
        _end(self.pid)
        _admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def admin(self) -> httpx.Client:
        """A client for test set-up through the Admin API (not the code under test)."""
        return httpx.Client(
            base_url=f"{self.url}/api/admin", headers={"Authorization": self.token}, timeout=10
        )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        with self.admin() as client:
            while time.monotonic() < deadline:
                if not _alive(self.pid):
                    raise RuntimeError(f"unleash-server exited during startup:\n{self._tail()}")
                try:
                    if client.get("/projects").status_code == 200:  # migrated, listening, token loaded
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"unleash-server not ready within {READY_WITHIN:.0f} s:\n{self._tail()}")

    def _tail(self, lines: int = 30) -> str:
        log = Path(self.log)
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:]).replace(self.token, "***")


@contextmanager
def shared_unleash(run_dir: Path) -> Iterator[UnleashServer]:
    """One server for every pytest-xdist worker of a run (see the module docstring)."""
    state, lock = run_dir / "unleash.json", run_dir / "unleash.lock"
    with _locked(lock):
        if state.exists():
            shared = json.loads(state.read_text())
            server = UnleashServer(**shared["server"])
        else:
            workdir = run_dir / "unleash"
            workdir.mkdir(parents=True, exist_ok=True)
            server = UnleashServer.start(workdir)
            shared = {"server": asdict(server), "users": 0}
        shared["users"] += 1
        state.write_text(json.dumps(shared))
    try:
        yield server
    finally:
        with _locked(lock):
            shared = json.loads(state.read_text())
            shared["users"] -= 1
            if shared["users"] == 0:
                state.unlink()
                server.stop()
            else:
                state.write_text(json.dumps(shared))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Servers this process started: only their parent can reap them; another worker only signals.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _end(pid: int, patience: float = 15.0) -> None:
    child = _children.pop(pid, None)
    if child is not None:
        child.terminate()
        try:
            child.wait(timeout=patience)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=patience)
        return
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + patience
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent that has not reaped it yet."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _environment(database: str, port: int, token: str, workdir: Path) -> dict[str, str]:
    pg = conninfo_to_dict(POSTGRES_URL)
    user, password = quote(str(pg.get("user") or "postgres")), quote(str(pg.get("password") or ""))
    credentials = f"{user}:{password}" if password else user
    host, pg_port = pg.get("host") or "127.0.0.1", pg.get("port") or "5432"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "TZ": "UTC",
        "NODE_ENV": "production",
        "DATABASE_URL": f"postgres://{credentials}@{host}:{pg_port}/{database}",
        "DATABASE_SSL": "false",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "INIT_ADMIN_API_TOKENS": token,
        "UNLEASH_DEFAULT_ADMIN_PASSWORD": secrets.token_urlsafe(18),  # not the well-known default
        "CHECK_VERSION": "false",  # no call home: the network here reaches package registries only
        "SEND_TELEMETRY": "false",
        "LOG_LEVEL": "warn",
    }


def _admin(statement: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(statement.encode())  # a database name we generated, not user input


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
