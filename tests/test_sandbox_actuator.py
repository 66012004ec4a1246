"""The sandbox target: state in SQLite, every received operation recorded, effect ⇔ record."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused
from adapters.actuators.sandbox import (
    EMULATED_CAPABILITIES,
    Emulated,
    Outcome,
    Sandbox,
    SandboxOperation,
    SandboxSettings,
    SandboxState,
)
from adapters.errors import Permanent, Transient
from policies.operations import Op, Operation

REPO = Path(__file__).resolve().parent.parent


def _sandbox(tmp_path: Path, name: str = "web", **fields: object) -> Sandbox:
    defaults: dict[str, object] = {"version": "v2", "previous_version": "v1", "traffic": 10}
    return Sandbox(name, SandboxSettings.model_validate(defaults | fields), tmp_path / "sandbox.sqlite3")


def _op(op: Op, target: str = "web", traffic: int | None = None, version: str | None = None) -> Operation:
    return Operation(target=target, op=op, traffic=traffic, version=version)


def _replay(initial: SandboxState, records: list[SandboxOperation]) -> SandboxState:
    """A literal reference for the effects, read off the recorded `applied` operations."""
    state = initial
    for record in records:
        if record.outcome is not Outcome.APPLIED:
            continue
        if record.op is Op.SET_TRAFFIC:
            assert record.traffic is not None
            state = replace(state, traffic=record.traffic)
        elif record.op is Op.ROLLBACK:
            state = replace(state, version=record.version)
        elif record.op in (Op.PAUSE, Op.RESUME):
            state = replace(state, paused=record.op is Op.PAUSE)
        else:
            state = replace(state, enabled=record.op is Op.ENABLE)
    return state


# -- state ----------------------------------------------------------------------------------


def test_new_target_starts_from_its_settings(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path)
    assert sandbox.state() == SandboxState("v2", "v1", 10, paused=False, enabled=True)
    assert sandbox.observe() == Observed("v2", 10, False, True, detail="previous_version=v1")


def test_constructing_a_sandbox_touches_no_file(tmp_path: Path) -> None:
    _sandbox(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_state_persists_across_instances_sharing_the_file(tmp_path: Path) -> None:
    _sandbox(tmp_path).apply(_op(Op.SET_TRAFFIC, traffic=50), "k1")
    _sandbox(tmp_path).apply(_op(Op.PAUSE), "k2")
    restarted = _sandbox(tmp_path, traffic=0)  # the file wins over settings once the target exists
    assert restarted.state() == SandboxState("v2", "v1", 50, paused=True, enabled=True)
    assert [r.key for r in restarted.operations()] == ["k1", "k2"]


def test_one_file_holds_many_targets_independently(tmp_path: Path) -> None:
    web, api = _sandbox(tmp_path, "web"), _sandbox(tmp_path, "api", traffic=0)
    web.apply(_op(Op.SET_TRAFFIC, traffic=50), "k")
    assert api.apply(_op(Op.SET_TRAFFIC, "api", traffic=0), "k") == AlreadyDone("already set_traffic(0%)")
    assert (web.state().traffic, api.state().traffic) == (50, 0)
    assert [r.outcome for r in web.operations()] == [Outcome.APPLIED]
    assert [r.outcome for r in api.operations()] == [Outcome.ALREADY_DONE]
    tables = (
        sqlite3.connect(tmp_path / "sandbox.sqlite3").execute("SELECT name FROM sqlite_master").fetchall()
    )
    assert {"sandbox_targets", "sandbox_operations"} <= {name for (name,) in tables}


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (_op(Op.SET_TRAFFIC, traffic=50), SandboxState("v2", "v1", 50, False, True)),
        (_op(Op.ROLLBACK, version="v1"), SandboxState("v1", "v1", 10, False, True)),
        (_op(Op.PAUSE), SandboxState("v2", "v1", 10, True, True)),
        (_op(Op.DISABLE), SandboxState("v2", "v1", 10, False, False)),
    ],
)
def test_each_operation_has_its_effect_and_nothing_else(
    tmp_path: Path, operation: Operation, expected: SandboxState
) -> None:
    sandbox = _sandbox(tmp_path)
    assert sandbox.apply(operation, "k") == Applied(operation.describe())
    assert sandbox.state() == expected


def test_resume_and_enable_undo_pause_and_disable(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path)
    for op in (Op.PAUSE, Op.DISABLE, Op.RESUME, Op.ENABLE):
        assert isinstance(sandbox.apply(_op(op), op.value), Applied)
    assert sandbox.state() == SandboxState("v2", "v1", 10, paused=False, enabled=True)


# -- records and idempotency ----------------------------------------------------------------


def test_every_operation_received_is_recorded_once_with_its_outcome(tmp_path: Path) -> None:
    ticks = iter(range(100, 200))
    sandbox = Sandbox(
        "web",
        SandboxSettings(emulates=Emulated.VERCEL, version="v2", refuse=frozenset({Op.SET_TRAFFIC})),
        tmp_path / "s.sqlite3",
        clock=lambda: float(next(ticks)),
    )
    sandbox.apply(_op(Op.ROLLBACK, version="v1"), "rollback")
    sandbox.apply(_op(Op.ROLLBACK, version="v1"), "rollback")
    sandbox.apply(_op(Op.PAUSE), "pause")
    sandbox.apply(_op(Op.SET_TRAFFIC, traffic=50), "traffic")
    records = sandbox.operations()
    assert [(r.key, r.op, r.outcome, r.at) for r in records] == [
        ("rollback", Op.ROLLBACK, Outcome.APPLIED, 100.0),
        ("rollback", Op.ROLLBACK, Outcome.ALREADY_DONE, 101.0),
        ("pause", Op.PAUSE, Outcome.REFUSED, 102.0),
        ("traffic", Op.SET_TRAFFIC, Outcome.REFUSED, 103.0),
    ]
    assert (records[0].version, records[3].traffic) == ("v1", 50)


def test_same_operation_twice_applies_once_then_is_already_done(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path)
    rollback = _op(Op.ROLLBACK, version="v1")
    assert sandbox.apply(rollback, "r1") == Applied("rollback(to v1)")
    assert sandbox.apply(rollback, "r1") == AlreadyDone("already rollback(to v1)")
    assert sandbox.applied_count("r1") == 1
    assert sandbox.state().version == "v1"


def test_operation_already_reflected_by_the_target_is_already_done(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path)
    assert isinstance(sandbox.apply(_op(Op.SET_TRAFFIC, traffic=10), "k"), AlreadyDone)
    assert isinstance(sandbox.apply(_op(Op.RESUME), "k2"), AlreadyDone)
    assert sandbox.applied_count("k") == 0


# -- refusals -------------------------------------------------------------------------------


def test_unsupported_operation_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path, emulates="app-store")
    result = sandbox.apply(_op(Op.ROLLBACK, version="v1"), "k")
    assert result == Refused("sandbox web (emulating app-store) cannot rollback")
    assert sandbox.state().version == "v2"
    assert [r.outcome for r in sandbox.operations()] == [Outcome.REFUSED]


def test_unsupported_operation_is_refused_even_when_the_state_matches(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path, emulates="supabase-functions", traffic=0)
    assert isinstance(sandbox.apply(_op(Op.SET_TRAFFIC, traffic=0), "k"), Refused)


def test_refuse_setting_refuses_a_supported_operation_that_has_work_to_do(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path, refuse=["pause"])
    assert sandbox.apply(_op(Op.PAUSE), "k") == Refused(
        "sandbox web (emulating generic) refuses pause (settings.refuse)"
    )
    assert sandbox.state().paused is False
    assert isinstance(sandbox.apply(_op(Op.RESUME), "k2"), AlreadyDone)  # observe comes first


@pytest.mark.parametrize(
    "operation",
    [
        _op(Op.SET_TRAFFIC),
        _op(Op.SET_TRAFFIC, traffic=101),
        _op(Op.ROLLBACK),
        _op(Op.PAUSE, target="api"),
    ],
    ids=["traffic-missing", "traffic-over-100", "rollback-without-version", "other-target"],
)
def test_malformed_or_misaddressed_operation_is_refused(tmp_path: Path, operation: Operation) -> None:
    sandbox = _sandbox(tmp_path)
    assert isinstance(sandbox.apply(operation, "k"), Refused)
    assert sandbox.state() == SandboxState("v2", "v1", 10, False, True)


# -- injected failures and delay ------------------------------------------------------------


def test_fail_times_raises_transient_for_the_first_applies_then_applies(tmp_path: Path) -> None:
    operation = _op(Op.SET_TRAFFIC, traffic=50)
    for attempt in (1, 2):
        with pytest.raises(Transient, match=f"injected failure #{attempt}"):
            _sandbox(tmp_path, fail_times=2).apply(operation, "k")  # the count survives a restart
    assert _sandbox(tmp_path).state().traffic == 10
    assert _sandbox(tmp_path, fail_times=2).apply(operation, "k") == Applied("set_traffic(50%)")
    outcomes = [r.outcome for r in _sandbox(tmp_path).operations()]
    assert outcomes == [Outcome.TRANSIENT, Outcome.TRANSIENT, Outcome.APPLIED]


def test_fail_always_raises_transient_every_time_and_never_applies(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path, fail_always=True)
    for _ in range(5):
        with pytest.raises(Transient):
            sandbox.apply(_op(Op.ROLLBACK, version="v1"), "k")
    assert sandbox.state().version == "v2"
    assert sandbox.applied_count("k") == 0


def test_delay_makes_each_apply_slow(tmp_path: Path) -> None:
    slept: list[float] = []
    sandbox = Sandbox("web", SandboxSettings(delay=2.5), tmp_path / "s.sqlite3", sleep=slept.append)
    sandbox.apply(_op(Op.PAUSE), "k")
    sandbox.observe()
    assert slept == [2.5]


def test_a_state_file_locked_by_another_process_is_a_transient_error(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.sqlite3"
    _sandbox(tmp_path).state()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    sandbox = Sandbox("web", SandboxSettings(), path, lock_timeout=0.05)
    with pytest.raises(Transient, match="database is locked"):
        sandbox.apply(_op(Op.PAUSE), "k")
    holder.execute("ROLLBACK")
    assert isinstance(sandbox.apply(_op(Op.PAUSE), "k"), Applied)


def test_a_state_file_that_is_not_a_database_is_a_permanent_error(tmp_path: Path) -> None:
    (tmp_path / "sandbox.sqlite3").write_text("not sqlite at all, " * 100)
    with pytest.raises(Permanent, match="not a database"):
        _sandbox(tmp_path).observe()


# -- emulated vendors -----------------------------------------------------------------------

S, P, R, B, D, E = Op.SET_TRAFFIC, Op.PAUSE, Op.RESUME, Op.ROLLBACK, Op.DISABLE, Op.ENABLE


@pytest.mark.parametrize(
    ("vendor", "expected"),
    [
        ("launchdarkly", {S, D, E}),
        ("unleash", {S, D, E}),
        ("appconfig", {D, E, B}),
        ("argocd", {B, P, R}),
        ("argo-rollouts", {P, R, B}),
        ("vercel", {S, B}),
        ("supabase-functions", {B}),
        ("app-store", {P, R}),
        ("google-play", {S, P, R, B}),
        ("generic", set(Op)),
    ],
)
def test_emulated_vendor_has_the_capabilities_of_design_table(
    tmp_path: Path, vendor: str, expected: set[Op]
) -> None:
    assert _sandbox(tmp_path, emulates=vendor).capabilities == frozenset(expected)


def test_every_emulated_vendor_is_in_the_capability_table() -> None:
    assert set(EMULATED_CAPABILITIES) == set(Emulated)


def test_app_store_can_neither_roll_back_nor_set_traffic(tmp_path: Path) -> None:
    capabilities = _sandbox(tmp_path, emulates="app-store").capabilities
    assert Op.ROLLBACK not in capabilities
    assert Op.SET_TRAFFIC not in capabilities


def test_supabase_functions_can_only_roll_back(tmp_path: Path) -> None:
    assert _sandbox(tmp_path, emulates="supabase-functions").capabilities == {Op.ROLLBACK}


def test_flags_turn_off_instead_of_pausing(tmp_path: Path) -> None:
    for vendor in ("launchdarkly", "unleash", "appconfig"):
        capabilities = _sandbox(tmp_path, emulates=vendor).capabilities
        assert Op.DISABLE in capabilities
        assert Op.PAUSE not in capabilities


def test_capabilities_setting_overrides_emulates(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path, emulates="app-store", capabilities=["rollback"])
    assert sandbox.capabilities == {Op.ROLLBACK}
    assert isinstance(sandbox.apply(_op(Op.ROLLBACK, version="v1"), "k"), Applied)


def test_observe_reports_only_what_the_emulated_vendor_knows(tmp_path: Path) -> None:
    observed = _sandbox(tmp_path, emulates="supabase-functions").observe()
    assert (observed.version, observed.traffic, observed.paused, observed.enabled) == ("v2", None, None, None)
    flag = _sandbox(tmp_path, "flag", emulates="launchdarkly").observe()
    assert (flag.traffic, flag.paused, flag.enabled) == (10, None, True)


def test_a_misspelled_setting_is_rejected() -> None:
    with pytest.raises(ValidationError, match="emulate"):
        SandboxSettings.model_validate({"emulate": "vercel"})


# -- crash safety and concurrency -----------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from adapters.actuators.sandbox import Sandbox, SandboxSettings
    from policies.operations import Op, Operation

    name, run = sys.argv[2], sys.argv[3]
    sandbox = Sandbox(name, SandboxSettings(version="v2", previous_version="v1"), Path(sys.argv[1]))
    cycle = [
        Operation(name, Op.SET_TRAFFIC, traffic=10), Operation(name, Op.PAUSE),
        Operation(name, Op.ROLLBACK, version="v1"), Operation(name, Op.DISABLE),
        Operation(name, Op.SET_TRAFFIC, traffic=50), Operation(name, Op.RESUME),
        Operation(name, Op.ROLLBACK, version="v2"), Operation(name, Op.ENABLE),
    ]
    limit = int(sys.argv[4])
    i = 0
    while limit == 0 or i < limit:
        sandbox.apply(cycle[i % len(cycle)], f"{run}-{i}")
        i += 1
        if i == 25:
            print("busy", flush=True)
    """
)


def _child(path: Path, name: str, run: str, limit: int = 0) -> subprocess.Popen[str]:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", _CHILD, str(path), name, run, str(limit)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_sigkill_mid_applies_never_leaves_an_effect_without_its_record(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.sqlite3"
    for run in range(4):
        child = _child(path, "web", f"run{run}")
        assert child.stdout is not None
        assert child.stdout.readline() == "busy\n"
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
    restarted = Sandbox("web", SandboxSettings(version="v2", previous_version="v1"), path)
    records = restarted.operations()
    assert len(records) >= 4 * 25
    assert restarted.state() == _replay(SandboxState("v2", "v1", 0, False, True), records)
    assert all(restarted.applied_count(r.key) == (r.outcome is Outcome.APPLIED) for r in records)
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert isinstance(restarted.apply(_op(Op.SET_TRAFFIC, traffic=77), "after"), Applied)


def test_processes_sharing_a_state_file_serialise_their_operations(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.sqlite3"
    runs = [("web", "a"), ("web", "b"), ("api", "c")]  # two processes on one target, one on another
    children = [_child(path, name, run, limit=100) for name, run in runs]
    for child in children:
        child.communicate(timeout=120)
        assert child.returncode == 0
    for name, expected in (("web", 200), ("api", 100)):
        sandbox = Sandbox(name, SandboxSettings(), path)
        records = sandbox.operations()
        assert len(records) == expected
        assert sandbox.state() == _replay(SandboxState("v2", "v1", 0, False, True), records)


_OPERATIONS = st.one_of(
    st.builds(lambda pct: _op(Op.SET_TRAFFIC, traffic=pct), st.sampled_from([0, 10, 50, 100])),
    st.builds(lambda v: _op(Op.ROLLBACK, version=v), st.sampled_from(["v1", "v2", "v3"])),
    st.sampled_from([_op(op) for op in (Op.PAUSE, Op.RESUME, Op.DISABLE, Op.ENABLE)]),
)


_EXAMPLES = itertools.count()


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-property")


@settings(max_examples=25, deadline=None)
@given(st.lists(_OPERATIONS, max_size=12))
def test_state_is_always_the_replay_of_the_applied_records(
    shared_dir: Path, operations: list[Operation]
) -> None:
    # One file for every example, one target per example: the file may hold many targets.
    name = f"web{next(_EXAMPLES)}"
    sandbox = _sandbox(shared_dir, name)
    for index, operation in enumerate(operations):
        addressed = replace(operation, target=name)
        before = sandbox.state()
        result = sandbox.apply(addressed, f"k{index}")
        assert isinstance(result, AlreadyDone) == (_replay(before, [_as_applied(addressed)]) == before)
    records = sandbox.operations()
    assert len(records) == len(operations)
    assert sandbox.state() == _replay(SandboxState("v2", "v1", 10, False, True), records)


def _as_applied(operation: Operation) -> SandboxOperation:
    return SandboxOperation(
        0, operation.target, "", operation.op, operation.traffic, operation.version, Outcome.APPLIED, "", 0.0
    )
