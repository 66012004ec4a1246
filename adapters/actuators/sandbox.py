"""The sandbox: a first-class fake deployment target, kept in a SQLite file.

`tidegate demo` and the tests drive it through the same code paths as a real vendor: the
planner reads its `capabilities`, the runtime journals an intent, calls `apply(op, key)` and
journals the result. Like httpx's mock transport, it ships in the package and is documented.

    targets:
      - name: web
        kind: sandbox
        settings: {emulates: vercel, version: v2, previous_version: v1, traffic: 10}

State. One file may hold many targets, keyed by name: table `sandbox_targets` holds each
target's version, traffic %, paused, enabled and `previous_version` (what the rollout rolls
back to; tidegate never changes it), created on first use from the settings. After that the
file wins: editing `version` in rollout.yaml does not move a target that already exists.
Nothing is read or written in the constructor.

Records. Table `sandbox_operations` gets one row for every operation the sandbox receives:
key, op, arguments, outcome (applied, already_done, refused, or transient for an injected
failure) and the wall-clock time. The effect and its row are written in ONE `BEGIN IMMEDIATE`
transaction on a fresh connection, so a process killed at any instant leaves either both or
neither, and several processes (a killed one and its restart) can share the file. SQLite
errors reach callers as adapters.errors: Transient (locked, I/O), Permanent (not a database).

apply(op, key), in this order:
  1. an op outside `capabilities` is refused — a target cannot "already have done" what it
     cannot do, so this comes before observing (the real adapters refuse without a call);
     so is one addressed to another target or missing its argument (percentage, version);
  2. an injected failure (`fail_times`, `fail_always`) raises `Transient`, as a timeout would;
  3. observe: when the target already is where the op would put it → `AlreadyDone`;
  4. an op listed in `refuse` is refused (a precondition a human must fix, like Argo CD's 412);
  5. otherwise the effect: set_traffic sets traffic; rollback(to) sets the version (traffic
     stays); pause/resume set paused; disable/enable set enabled → `Applied`.

`observe()` reports only what the emulated target has a notion of: traffic when it supports
set_traffic, paused when it supports pause or resume, enabled when it supports disable or
enable (None otherwise, as base.Observed asks); the version always. `state()` shows it all.

`emulates` gives the sandbox the capability set of a real vendor (DESIGN.md "Actuators and
their capabilities", reference/apis.md); `capabilities:` overrides it. The table is
`EMULATED_CAPABILITIES`; each entry says which vendor fact it follows.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result, satisfied
from adapters.errors import Permanent, Transient
from policies.operations import Op, Operation


class Emulated(StrEnum):
    """The vendors a sandbox can stand in for."""

    LAUNCHDARKLY = "launchdarkly"
    UNLEASH = "unleash"
    APPCONFIG = "appconfig"
    ARGOCD = "argocd"
    ARGO_ROLLOUTS = "argo-rollouts"
    VERCEL = "vercel"
    SUPABASE_FUNCTIONS = "supabase-functions"
    APP_STORE = "app-store"
    GOOGLE_PLAY = "google-play"
    GENERIC = "generic"


STATE_FILE = "sandbox.sqlite3"  # the file under the state directory that holds every sandbox target

_FLAG = frozenset({Op.SET_TRAFFIC, Op.DISABLE, Op.ENABLE})

EMULATED_CAPABILITIES = MappingProxyType(
    {
        # Percentage rollout (LD fallthrough weights, Unleash flexibleRollout) and flag off/on.
        # Neither API restores an earlier flag version, so no rollback: "flag off" is the rollback.
        Emulated.LAUNCHDARKLY: _FLAG,
        Emulated.UNLEASH: _FLAG,
        # Flag on/off (a feature-flag profile), and a rollback to the previous configuration
        # version (StopDeployment with Allow-Revert, or a new deployment of it); the deployment
        # strategy owns the percentage, so no set_traffic (see adapters/actuators/appconfig.py).
        Emulated.APPCONFIG: frozenset({Op.DISABLE, Op.ENABLE, Op.ROLLBACK}),
        # Rollback to a history id. Pause = auto-sync off, resume = auto-sync on (DESIGN's
        # "disable auto-sync"); no traffic, that is Argo Rollouts' job. Re-enabling auto-sync
        # re-deploys HEAD (argo-cd#9570), so resuming after a rollback undoes it.
        Emulated.ARGOCD: frozenset({Op.ROLLBACK, Op.PAUSE, Op.RESUME}),
        # spec.paused and abort (back to stable); weights move only through the Rollout's own
        # canary steps, so there is no set_traffic (see adapters/actuators/argo_rollouts.py).
        Emulated.ARGO_ROLLOUTS: frozenset({Op.PAUSE, Op.RESUME, Op.ROLLBACK}),
        # Rolling-release stages and instant rollback; no pause endpoint.
        Emulated.VERCEL: frozenset({Op.SET_TRAFFIC, Op.ROLLBACK}),
        # No traffic split and no pause; rollback = redeploy the previous bundle.
        Emulated.SUPABASE_FUNCTIONS: frozenset({Op.ROLLBACK}),
        # The phased-release ladder is fixed and nothing can be rolled back by API: pause/resume only.
        Emulated.APP_STORE: frozenset({Op.PAUSE, Op.RESUME}),
        # userFraction, halt / back to inProgress, and "halt + the previous completed release is
        # served again" as rollback (users who installed the bad build keep it).
        Emulated.GOOGLE_PLAY: frozenset({Op.SET_TRAFFIC, Op.PAUSE, Op.RESUME, Op.ROLLBACK}),
        Emulated.GENERIC: frozenset(Op),
    }
)


class SandboxSettings(BaseModel):
    """A sandbox target's settings in rollout.yaml; unknown fields are errors (typos caught)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    emulates: Emulated = Emulated.GENERIC
    capabilities: frozenset[Op] | None = None  # overrides `emulates`
    version: str | None = None
    previous_version: str | None = None
    traffic: int = Field(default=0, ge=0, le=100)
    fail_times: int = Field(default=0, ge=0)  # the first N applies raise Transient
    fail_always: bool = False  # every apply raises Transient
    delay: float = Field(default=0.0, ge=0.0)  # seconds each apply takes
    refuse: frozenset[Op] = frozenset()  # supported, but refused (a precondition a human must fix)


def capabilities_for(settings: SandboxSettings) -> frozenset[Op]:
    """What a sandbox with these settings supports; pure, touches no file."""
    if settings.capabilities is not None:
        return settings.capabilities
    return EMULATED_CAPABILITIES[settings.emulates]


class Outcome(Enum):
    APPLIED = "applied"
    ALREADY_DONE = "already_done"
    REFUSED = "refused"
    TRANSIENT = "transient"  # an injected failure: the caller saw Transient


@dataclass(frozen=True)
class SandboxState:
    version: str | None
    previous_version: str | None
    traffic: int
    paused: bool
    enabled: bool


@dataclass(frozen=True)
class SandboxOperation:
    """One operation the sandbox received, as recorded."""

    seq: int
    target: str
    key: str
    op: Op
    traffic: int | None
    version: str | None
    outcome: Outcome
    detail: str
    at: float


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sandbox_targets (
        name TEXT PRIMARY KEY, version TEXT, previous_version TEXT,
        traffic INTEGER NOT NULL, paused INTEGER NOT NULL, enabled INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sandbox_operations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, key TEXT NOT NULL,
        op TEXT NOT NULL, traffic INTEGER, version TEXT, outcome TEXT NOT NULL,
        detail TEXT NOT NULL, at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS sandbox_operations_by_key ON sandbox_operations (target, key)",
)


class Sandbox:
    """A fake target implementing the Actuator Protocol; see the module docstring."""

    def __init__(
        self,
        name: str,
        settings: SandboxSettings,
        state_path: Path,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        lock_timeout: float = 30.0,
    ) -> None:
        self._name = name
        self._settings = settings
        self._path = state_path
        self._clock = clock
        self._sleep = sleep
        self._lock_timeout = lock_timeout  # seconds to wait for another process's transaction
        self._capabilities = capabilities_for(settings)
        self._ensured = False  # tables and this target's row exist (checked once per instance)

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return self._capabilities

    def state(self) -> SandboxState:
        with self._transaction() as db:
            return self._load(db)

    def observe(self) -> Observed:
        return self._observed(self.state())

    def apply(self, operation: Operation, key: str) -> Result:
        if self._settings.delay > 0:
            self._sleep(self._settings.delay)
        with self._transaction() as db:
            state = self._load(db)
            outcome, detail = self._judge(db, operation, state)
            if outcome is Outcome.APPLIED:
                self._save(db, _effect(state, operation))
            self._record(db, operation, key, outcome, detail)
        if outcome is Outcome.TRANSIENT:
            raise Transient(f"sandbox {self._name}: {detail}")
        if outcome is Outcome.REFUSED:
            return Refused(detail)
        if outcome is Outcome.ALREADY_DONE:
            return AlreadyDone(detail)
        return Applied(detail)

    def operations(self) -> list[SandboxOperation]:
        """Every operation this target received, oldest first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, target, key, op, traffic, version, outcome, detail, at"
                " FROM sandbox_operations WHERE target = ? ORDER BY seq",
                (self._name,),
            ).fetchall()
        return [
            SandboxOperation(seq, target, key, Op(op), traffic, version, Outcome(outcome), detail, at)
            for seq, target, key, op, traffic, version, outcome, detail, at in rows
        ]

    def applied_count(self, key: str) -> int:
        """How many times an operation with this idempotency key took effect (0 or 1, if all is well)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT count(*) FROM sandbox_operations WHERE target = ? AND key = ? AND outcome = ?",
                (self._name, key, Outcome.APPLIED.value),
            ).fetchone()
        return int(row[0])

    def _judge(
        self, db: sqlite3.Connection, operation: Operation, state: SandboxState
    ) -> tuple[Outcome, str]:
        op = operation.op
        if operation.target != self._name:
            return Outcome.REFUSED, f"operation for target {operation.target!r} sent to {self._name!r}"
        if op not in self._capabilities:
            return Outcome.REFUSED, f"{self._kind()} cannot {op.value}"
        malformed = _malformed(operation)
        if malformed:
            return Outcome.REFUSED, malformed
        failures = self._transient_failures(db)
        if self._settings.fail_always or failures < self._settings.fail_times:
            return Outcome.TRANSIENT, f"injected failure #{failures + 1} on {operation.describe()}"
        if satisfied(operation, self._observed(state)):
            return Outcome.ALREADY_DONE, f"already {operation.describe()}"
        if op in self._settings.refuse:
            return Outcome.REFUSED, f"{self._kind()} refuses {op.value} (settings.refuse)"
        return Outcome.APPLIED, operation.describe()

    def _kind(self) -> str:
        if self._settings.capabilities is not None:
            return f"sandbox {self._name}"
        return f"sandbox {self._name} (emulating {self._settings.emulates.value})"

    def _observed(self, state: SandboxState) -> Observed:
        caps = self._capabilities
        return Observed(
            version=state.version,
            traffic=state.traffic if Op.SET_TRAFFIC in caps else None,
            paused=state.paused if caps & {Op.PAUSE, Op.RESUME} else None,
            enabled=state.enabled if caps & {Op.DISABLE, Op.ENABLE} else None,
            detail=f"previous_version={state.previous_version}",
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # A fresh connection per call and BEGIN IMMEDIATE: the write lock is taken before the
        # state is read, so observe-then-act is atomic across processes sharing the file.
        # WAL with synchronous=NORMAL: a commit survives the process being killed (not a power
        # cut, which a sandbox need not survive) without an fsync per operation.
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, timeout=self._lock_timeout, isolation_level=None)
            try:
                _use_wal(db)
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("BEGIN IMMEDIATE")
                try:
                    if not self._ensured:
                        self._ensure(db)
                    yield db
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                self._ensured = True
            finally:
                db.close()
        except sqlite3.OperationalError as error:  # locked past the timeout, disk I/O
            raise Transient(f"sandbox {self._name}: state file {self._path}: {error}") from error
        except (sqlite3.DatabaseError, OSError) as error:  # not a database, not a directory
            raise Permanent(f"sandbox {self._name}: state file {self._path}: {error}") from error

    def _ensure(self, db: sqlite3.Connection) -> None:
        for statement in _SCHEMA:
            db.execute(statement)
        s = self._settings
        db.execute(
            "INSERT OR IGNORE INTO sandbox_targets VALUES (?, ?, ?, ?, 0, 1)",
            (self._name, s.version, s.previous_version, s.traffic),
        )

    def _load(self, db: sqlite3.Connection) -> SandboxState:
        version, previous, traffic, paused, enabled = db.execute(
            "SELECT version, previous_version, traffic, paused, enabled FROM sandbox_targets WHERE name = ?",
            (self._name,),
        ).fetchone()
        return SandboxState(version, previous, int(traffic), bool(paused), bool(enabled))

    def _save(self, db: sqlite3.Connection, state: SandboxState) -> None:
        db.execute(
            "UPDATE sandbox_targets SET version = ?, traffic = ?, paused = ?, enabled = ? WHERE name = ?",
            (state.version, state.traffic, int(state.paused), int(state.enabled), self._name),
        )

    def _record(
        self, db: sqlite3.Connection, operation: Operation, key: str, outcome: Outcome, detail: str
    ) -> None:
        db.execute(
            "INSERT INTO sandbox_operations (target, key, op, traffic, version, outcome, detail, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self._name,
                key,
                operation.op.value,
                operation.traffic,
                operation.version,
                outcome.value,
                detail,
                self._clock(),
            ),
        )

    def _transient_failures(self, db: sqlite3.Connection) -> int:
        row = db.execute(
            "SELECT count(*) FROM sandbox_operations WHERE target = ? AND outcome = ?",
            (self._name, Outcome.TRANSIENT.value),
        ).fetchone()
        return int(row[0])


def _malformed(operation: Operation) -> str:
    """Why an operation lacks the argument it needs, or "" when it is well-formed."""
    if operation.op is Op.SET_TRAFFIC and (operation.traffic is None or not 0 <= operation.traffic <= 100):
        return f"set_traffic needs a percentage in 0..100, got {operation.traffic}"
    if operation.op is Op.ROLLBACK and not operation.version:
        return "rollback needs the version to roll back to"
    return ""


def _effect(state: SandboxState, operation: Operation) -> SandboxState:
    """The state after `operation`; the only place the sandbox's semantics are written."""
    op = operation.op
    if op is Op.SET_TRAFFIC:
        return replace(state, traffic=state.traffic if operation.traffic is None else operation.traffic)
    if op is Op.ROLLBACK:
        return replace(state, version=operation.version)
    if op in (Op.PAUSE, Op.RESUME):
        return replace(state, paused=op is Op.PAUSE)
    return replace(state, enabled=op is Op.ENABLE)


def _use_wal(db: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch a (possibly brand-new) file to WAL. Changing the journal mode takes an exclusive
    lock that SQLite's busy timeout does not wait for, so several threads opening a new state
    file at once would see "database is locked" at once: wait a little and try again."""
    for attempt in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (1 + attempt % 5))
