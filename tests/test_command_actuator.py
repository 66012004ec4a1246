"""The `command` target, running real programs: small scripts written into tmp_path.

Each operation in the program's environment, the exit-status convention (0 applied, 3 already
done, 75 transient, anything else permanent with stderr's last lines), the timeout killing
the whole process group, observe-first, a crash between intent and result finished by the
real Reconciler, units traps, and no secret value in errors, logs, journal or audit.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.actuators import command as command_module
from adapters.actuators.base import Actuator, AlreadyDone, Applied, Observed, Refused, Result
from adapters.actuators.command import Command, CommandSettings
from adapters.actuators.registry import build_actuator, capabilities_of
from adapters.errors import AuthFailed, ConfigError, Permanent, Transient
from controller.bootstrap import live_rollout
from controller.core.model import RolloutId, RolloutStatus, State
from controller.runtime import AUTOMATIC, LiveRollout, Reconciler
from controller.spec import load_rollout
from controller.store.base import AuditDraft, RolloutRecord
from controller.store.sqlite import SqliteStore
from policies.evaluator import Evaluator
from policies.operations import Op, Operation

TOKEN = "dpl-4e1b-secret-77aa90"
NOW = 1_790_000_000.0
PYTHON = sys.executable

# A deploy script as a team would write one against the convention: it keeps its target's
# state in a JSON file, exits 3 when there is nothing to do, and logs what it was told.
DEPLOY = """\
import json, os, sys
from pathlib import Path

state_file, log = Path(sys.argv[1]), Path(sys.argv[1]).with_suffix(".log")
state = {"version": "2.0.0", "traffic": 100, "paused": False, "enabled": True}
if state_file.exists():
    state = json.loads(state_file.read_text())
if sys.argv[2:] == ["observe"]:
    print(json.dumps(state))
    sys.exit(0)
told = {k: v for k, v in os.environ.items() if k.startswith("TIDEGATE_")}
with log.open("a") as handle:
    handle.write(json.dumps(told) + "\\n")
operation = told["TIDEGATE_OPERATION"]
field, value = {
    "set_traffic": ("traffic", int(told["TIDEGATE_TRAFFIC"] or 0)),
    "rollback": ("version", told["TIDEGATE_VERSION"]),
    "pause": ("paused", True),
    "resume": ("paused", False),
    "disable": ("enabled", False),
    "enable": ("enabled", True),
}[operation]
if state[field] == value:
    print("nothing to do")
    sys.exit(3)
state[field] = value
state_file.write_text(json.dumps(state))
print("deploying...")
print(f"{operation} done")
"""


@dataclass
class Deploy:
    """The deploy script in a folder, and what it did."""

    folder: Path

    @property
    def argv(self) -> list[str]:
        return [PYTHON, str(self.folder / "deploy.py"), str(self.folder / "state.json")]

    @property
    def observe_argv(self) -> list[str]:
        return [*self.argv, "observe"]

    def state(self) -> dict[str, object]:
        path = self.folder / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def calls(self) -> list[dict[str, str]]:
        path = self.folder / "state.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def deploy(tmp_path: Path) -> Deploy:
    (tmp_path / "deploy.py").write_text(DEPLOY, encoding="utf-8")
    return Deploy(tmp_path)


def script(folder: Path, body: str, name: str = "hook.sh") -> str:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def command(
    argv: list[str], *, env: dict[str, str] | None = None, name: str = "legacy", **settings: object
) -> Command:
    model = CommandSettings.model_validate({"argv": argv, **settings})
    return Command(name, model, {"PATH": os.environ["PATH"], **(env or {})})


# --- each operation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "traffic", "version", "field", "value"),
    [
        (Operation("legacy", Op.SET_TRAFFIC, traffic=10), "10", "", "traffic", 10),
        (Operation("legacy", Op.ROLLBACK, version="1.9.0"), "", "1.9.0", "version", "1.9.0"),
        (Operation("legacy", Op.PAUSE), "", "", "paused", True),
        (Operation("legacy", Op.DISABLE), "", "", "enabled", False),
    ],
)
def test_each_operation_runs_the_program_with_the_operation_in_its_environment(
    deploy: Deploy, operation: Operation, traffic: str, version: str, field: str, value: object
) -> None:
    result = command(deploy.argv).apply(operation, "shop-1/4/legacy/x")

    assert result == Applied(f"{operation.describe()}: {operation.op.value} done")  # stdout's last line
    assert deploy.state()[field] == value
    assert deploy.calls() == [
        {
            "TIDEGATE_TARGET": "legacy",
            "TIDEGATE_OPERATION": operation.op.value,
            "TIDEGATE_TRAFFIC": traffic,
            "TIDEGATE_VERSION": version,
            "TIDEGATE_KEY": "shop-1/4/legacy/x",
        }
    ]


def test_the_program_gets_only_its_own_variables_and_the_basics(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    hook = script(tmp_path, f'env > "{out}"\n')
    env = {"DEPLOY_TOKEN": TOKEN, "OTHER_TARGETS_TOKEN": "not-for-you", "HOME": "/home/ci", "LANG": "C.UTF-8"}

    command([hook], env=env, pass_env=["DEPLOY_TOKEN"]).apply(Operation("legacy", Op.PAUSE), "k")

    seen = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert seen["DEPLOY_TOKEN"] == TOKEN
    assert (seen["HOME"], seen["LANG"], seen["PATH"]) == ("/home/ci", "C.UTF-8", os.environ["PATH"])
    assert "OTHER_TARGETS_TOKEN" not in seen


def test_a_missing_pass_env_variable_is_auth_failed_before_the_program_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hook = script(tmp_path, f'touch "{marker}"\n')

    with pytest.raises(AuthFailed, match="environment variable DEPLOY_TOKEN is not set"):
        command([hook], pass_env=["DEPLOY_TOKEN"]).apply(Operation("legacy", Op.PAUSE), "k")

    assert not marker.exists()


# --- the exit-status convention ------------------------------------------------------------------


def test_exit_0_is_applied_with_stdouts_last_line(tmp_path: Path) -> None:
    hook = script(tmp_path, 'echo "step 1"\necho "switched the router to 1.9.0"\n')

    result = command([hook]).apply(Operation("legacy", Op.ROLLBACK, version="1.9.0"), "k")

    assert result == Applied("rollback(to 1.9.0): switched the router to 1.9.0")


def test_exit_3_is_already_done(deploy: Deploy) -> None:
    target = command(deploy.argv)
    operation = Operation("legacy", Op.ROLLBACK, version="1.9.0")

    first, second = target.apply(operation, "k"), target.apply(operation, "k")

    assert isinstance(first, Applied)
    assert second == AlreadyDone("rollback(to 1.9.0): nothing to do")


def test_exit_75_is_transient(tmp_path: Path) -> None:
    hook = script(tmp_path, 'echo "cluster busy, try later" >&2\nexit 75\n')

    with pytest.raises(
        Transient, match=r"command legacy: hook.sh exited 75 \(try again later\): cluster busy"
    ):
        command([hook]).apply(Operation("legacy", Op.PAUSE), "k")


@pytest.mark.parametrize("status", [1, 2, 4, 64, 126])
def test_any_other_exit_is_permanent_with_the_last_lines_of_stderr(tmp_path: Path, status: int) -> None:
    lines = "".join(f'echo "line {i}" >&2\n' for i in range(1, 11))
    hook = script(tmp_path, f"{lines}exit {status}\n")

    with pytest.raises(Permanent) as raised:
        command([hook]).apply(Operation("legacy", Op.PAUSE), "k")

    assert (
        str(raised.value)
        == f"command legacy: hook.sh exited {status}: line 6 | line 7 | line 8 | line 9 | line 10"
    )


def test_death_by_a_signal_is_permanent_and_says_which(tmp_path: Path) -> None:
    hook = script(tmp_path, "kill -9 $$\n")

    with pytest.raises(Permanent, match=r"command legacy: hook\.sh was killed by SIGKILL"):
        command([hook]).apply(Operation("legacy", Op.PAUSE), "k")


def test_a_program_that_does_not_exist_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(
        Permanent, match=r"command legacy: nope\.sh could not start: No such file or directory"
    ):
        command([str(tmp_path / "nope.sh")]).apply(Operation("legacy", Op.PAUSE), "k")


def test_a_program_that_is_not_executable_is_permanent(tmp_path: Path) -> None:
    (tmp_path / "plain.sh").write_text("exit 0\n")

    with pytest.raises(Permanent, match="could not start: Permission denied"):
        command([str(tmp_path / "plain.sh")]).apply(Operation("legacy", Op.PAUSE), "k")


# --- timeout ------------------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    """Dead (or a zombie nobody reaped yet: a container's init may not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _wait_until_gone(pid: int, within: float = 2.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.02)
    return _gone(pid)


def test_a_program_past_its_timeout_is_killed_with_its_children_and_is_transient(tmp_path: Path) -> None:
    child = tmp_path / "child.pid"
    hook = script(tmp_path, f'sleep 30 &\necho $! > "{child}"\nwait\n')
    started = time.monotonic()

    with pytest.raises(Transient, match=r"hook.sh still running after 0.3s: its process group was killed"):
        command([hook], timeout=0.3).apply(Operation("legacy", Op.PAUSE), "k")

    assert time.monotonic() - started < 3
    assert _wait_until_gone(int(child.read_text()))  # the deploy script's own child died too


def test_a_program_ignoring_sigterm_gets_sigkill_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(command_module, "KILL_GRACE", 0.3)
    hook = script(tmp_path, "trap '' TERM\nsleep 30 &\nwait\nwait\n")
    started = time.monotonic()

    with pytest.raises(Transient, match=r"still running after 0\.2s"):
        command([hook], timeout=0.2).apply(Operation("legacy", Op.PAUSE), "k")

    assert time.monotonic() - started < 3


# --- observe first ------------------------------------------------------------------------------


def test_observe_reads_the_state_the_observe_program_prints(deploy: Deploy) -> None:
    observed = command(deploy.argv, observe=deploy.observe_argv).observe()

    assert observed == Observed(version="2.0.0", traffic=100, paused=False, enabled=True)


def test_with_observe_nothing_runs_when_the_target_is_already_there(deploy: Deploy) -> None:
    target = command(deploy.argv, observe=deploy.observe_argv)

    result = target.apply(Operation("legacy", Op.SET_TRAFFIC, traffic=100), "k")

    assert result == AlreadyDone("already set_traffic(100%) (observed)")
    assert deploy.calls() == []


def test_without_observe_the_state_is_unknown_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    observed = command([script(tmp_path, f'touch "{marker}"\n')]).observe()

    assert (observed.version, observed.traffic, observed.paused, observed.enabled) == (None,) * 4
    assert not marker.exists()


@pytest.mark.parametrize(
    ("printed", "complaint"),
    [
        ('{"traffic": 0.5}', "traffic: input should be a valid integer, got a number with a fractional part"),
        ('{"traffic": 250}', "traffic: input should be less than or equal to 100"),
        ('{"paused": "no"}', "paused: input should be a valid boolean"),
        ("traffic=50", "invalid json"),
    ],
)
def test_an_observed_state_in_the_wrong_units_or_shape_is_permanent(
    tmp_path: Path, printed: str, complaint: str
) -> None:
    state = script(tmp_path, f"echo '{printed}'\n", name="state.sh")

    with pytest.raises(Permanent, match=r"command legacy: state\.sh printed an unexpected state") as raised:
        command(["/bin/true"], observe=[state]).observe()

    assert complaint in str(raised.value).lower()


def test_an_observe_program_exiting_75_is_transient(tmp_path: Path) -> None:
    state = script(tmp_path, "exit 75\n", name="state.sh")

    with pytest.raises(Transient):
        command(["/bin/true"], observe=[state]).observe()


# --- refused before anything runs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "reason"),
    [
        (Operation("legacy", Op.SET_TRAFFIC, traffic=10), "command legacy cannot set_traffic"),
        (Operation("other", Op.ROLLBACK, version="1"), "operation for target 'other' sent to 'legacy'"),
        (Operation("legacy", Op.ROLLBACK), "rollback needs the version"),
    ],
)
def test_an_operation_it_cannot_run_is_refused_without_running_anything(
    tmp_path: Path, operation: Operation, reason: str
) -> None:
    marker = tmp_path / "ran"
    target = command([script(tmp_path, f'touch "{marker}"\n')], capabilities=["rollback", "pause"])

    result = target.apply(operation, "k")

    assert isinstance(result, Refused)
    assert reason in result.reason
    assert not marker.exists()


# --- secrets --------------------------------------------------------------------------------------


def test_a_passed_secret_printed_by_the_program_is_redacted(tmp_path: Path) -> None:
    hook = script(tmp_path, 'echo "auth with $DEPLOY_TOKEN failed" >&2\nexit 1\n')

    with pytest.raises(Permanent) as raised:
        command([hook], env={"DEPLOY_TOKEN": TOKEN}, pass_env=["DEPLOY_TOKEN"]).apply(
            Operation("legacy", Op.PAUSE), "k"
        )

    assert str(raised.value) == "command legacy: hook.sh exited 1: auth with *** failed"


def test_a_secret_straddling_the_kept_tail_leaves_no_part_behind(tmp_path: Path) -> None:
    padding = "x" * (command_module.STDERR_CHARS - 8)
    hook = script(tmp_path, f'echo "$DEPLOY_TOKEN{padding}" >&2\nexit 1\n')

    with pytest.raises(Permanent) as raised:
        command([hook], env={"DEPLOY_TOKEN": TOKEN}, pass_env=["DEPLOY_TOKEN"]).apply(
            Operation("legacy", Op.PAUSE), "k"
        )

    assert TOKEN[-8:] not in str(raised.value)


def test_a_secret_on_stdout_is_redacted_from_the_applied_detail(tmp_path: Path) -> None:
    hook = script(tmp_path, 'echo "used $DEPLOY_TOKEN"\n')

    result = command([hook], env={"DEPLOY_TOKEN": TOKEN}, pass_env=["DEPLOY_TOKEN"]).apply(
        Operation("legacy", Op.PAUSE), "k"
    )

    assert result == Applied("pause: used ***")


# --- through the real Reconciler: journal, crash, recovery ------------------------------------


class Crash(BaseException):
    """The process dying right after the program ran: its result never journaled."""


@dataclass
class DiesAfterLanding:
    inner: Actuator

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def capabilities(self) -> frozenset[Op]:
        return self.inner.capabilities

    def observe(self) -> Observed:
        return self.inner.observe()

    def apply(self, operation: Operation, key: str) -> Result:
        self.inner.apply(operation, key)
        raise Crash


@dataclass
class World:
    folder: Path
    store: SqliteStore
    rollout: LiveRollout

    def reload(self) -> LiveRollout:
        record = self.store.get_rollout(self.rollout.id)
        assert record is not None
        return live_rollout(
            record, load_rollout(str(self.folder / "rollout.yaml")), self.rollout.evaluator, self.folder
        )

    def outcomes(self) -> dict[str, str | None]:
        return {i.operation.target: i.outcome for i in self.store.intents(self.rollout.id)}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., World]]:
    monkeypatch.setenv("DEPLOY_TOKEN", TOKEN)
    stores: list[SqliteStore] = []

    def make(targets: dict[str, dict[str, object]]) -> World:
        listed = "".join(
            f"  - name: {name}\n    kind: command\n    settings: {json.dumps(settings)}\n"
            for name, settings in targets.items()
        )
        (tmp_path / "rollout.yaml").write_text(
            'apiVersion: tidegate/v1\nkind: Rollout\nmetadata: {name: shop}\nversion: "2.0.0"\n'
            f'previousVersion: "1.9.0"\npolicies: [library:runbook]\ntargets:\n{listed}',
            encoding="utf-8",
        )
        spec = load_rollout(str(tmp_path / "rollout.yaml"))
        store = SqliteStore(tmp_path / "state.db")
        stores.append(store)
        status = RolloutStatus(State.PROGRESSING, 100, 2, NOW)
        record = RolloutRecord(RolloutId("shop-1"), spec.name, spec.model_dump_json(), status, NOW)
        store.create_rollout(record, AuditDraft(NOW, AUTOMATIC, "created", record.id, {}))
        rollout = live_rollout(record, spec, Evaluator([], start=NOW, kinds={}), tmp_path)
        return World(tmp_path, store, rollout)

    yield make
    for store in stores:
        store.close()


def _deploy_in(folder: Path) -> Deploy:
    folder.mkdir()
    (folder / "deploy.py").write_text(DEPLOY, encoding="utf-8")
    return Deploy(folder)


@pytest.mark.parametrize("observe", [False, True], ids=["by-exit-3", "by-observing"])
def test_a_crash_between_intent_and_result_is_finished_without_running_twice(
    world: Callable[..., World], tmp_path: Path, observe: bool
) -> None:
    deploys = {name: _deploy_in(tmp_path / name) for name in ("edge", "billing")}
    w = world(
        {
            name: {"argv": d.argv, **({"observe": d.observe_argv} if observe else {})}
            for name, d in deploys.items()
        }
    )
    w.rollout.actuators["edge"] = DiesAfterLanding(w.rollout.actuators["edge"])
    with pytest.raises(Crash):
        Reconciler(w.store, attempts=1).manual(
            w.rollout, "rollback", NOW, actor="alice", reason="bad release"
        )

    restarted = w.reload()
    Reconciler(w.store, attempts=1).recover(restarted, NOW + 30)

    # Both landed before the crash (targets are driven in parallel); neither result was journaled.
    assert w.outcomes() == {"edge": "already_done", "billing": "already_done"}
    assert restarted.status.state is State.ROLLED_BACK
    for deploy in deploys.values():
        assert deploy.state()["version"] == "1.9.0"
        assert len(deploy.calls()) == (1 if observe else 2)  # the repeat never ran, or exited 3


def test_no_secret_reaches_the_journal_the_audit_log_or_the_logs(
    world: Callable[..., World], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    leaky = script(tmp_path, 'echo "login as $DEPLOY_TOKEN refused" >&2\nexit 1\n')
    w = world({"edge": {"argv": [leaky], "pass_env": ["DEPLOY_TOKEN"]}})

    Reconciler(w.store, attempts=1).manual(w.rollout, "rollback", NOW, actor="alice", reason="bad release")

    assert w.outcomes() == {"edge": "failed"}
    journal = " ".join(i.detail for i in w.store.intents(w.rollout.id))
    audit = " ".join(e.payload_json for e in w.store.audit_log(w.rollout.id))
    assert "login as *** refused" in journal
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert TOKEN not in journal
    assert TOKEN not in audit
    assert TOKEN not in caplog.text
    assert TOKEN.encode() not in raw


# --- settings ---------------------------------------------------------------------------------


def test_the_registry_builds_it_and_reads_capabilities_from_settings(tmp_path: Path) -> None:
    settings = {"argv": ["/bin/true"], "capabilities": ["rollback"]}

    actuator = build_actuator("command", "legacy", settings, state_dir=tmp_path, env={})

    assert isinstance(actuator, Command)
    assert actuator.capabilities == capabilities_of("command", settings) == {Op.ROLLBACK}
    assert capabilities_of("command", {"argv": ["/bin/true"]}) == frozenset(Op)


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"argv": "./deploy.sh --rollback"}, "not a shell string (no shell runs it)"),
        ({"argv": []}, "argv: "),
        ({"argv": ["x"], "observe": "./state.sh"}, "observe: "),
        ({"argv": ["x"], "env": {"A": "b"}}, "unknown setting 'env'"),
        ({"argv": ["x"], "pass_env": ["NOT A NAME"]}, "pass_env[0]: "),
        ({"argv": ["x"], "timeout": 0}, "timeout: expected greater than 0"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_field(settings: dict[str, object], complaint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        capabilities_of("command", settings)
    assert complaint in str(raised.value)


def test_it_names_the_variables_it_passes_as_credentials() -> None:
    settings = CommandSettings(argv=("x",), pass_env=("DEPLOY_TOKEN", "KUBECONFIG"))
    assert settings.secret_variables() == ("DEPLOY_TOKEN", "KUBECONFIG")
