"""`command`: run a configured program — a deploy script — with the operation in its environment.

    targets:
      - name: legacy-deploy
        kind: command
        settings:
          argv: [/opt/deploy/tidegate-hook.sh, --env, prod]   # a list: no shell ever runs it
          observe: [/opt/deploy/state.sh, --json]              # optional: observe first
          pass_env: [DEPLOY_TOKEN, KUBECONFIG]                 # passed through; each must be set
          timeout: 300                                         # seconds (default 300)
          capabilities: [rollback, pause, resume]              # default: every operation

The environment. The program gets `TIDEGATE_TARGET`, `TIDEGATE_OPERATION` (set_traffic, pause,
resume, rollback, disable, enable), `TIDEGATE_TRAFFIC` (a whole percentage for set_traffic,
else empty), `TIDEGATE_VERSION` (the version to return to for rollback, else empty) and
`TIDEGATE_KEY` (the journal's idempotency key: the same key means the same operation, so a
script may record the keys it has done); `PATH`, `HOME`, `LANG`, `LC_ALL`, `TZ` and `TMPDIR`
from tidegate's environment; and the variables named in `pass_env`. Nothing else: other
targets' tokens stay out of a script's reach. A `pass_env` variable that is unset is a
missing credential (AuthFailed), found before the program starts. The rollout's id is not
passed: the key carries it, but its shape is the journal's business, not the script's.

The exit status is the result (the convention a script must follow):
  - 0 → applied (the last line of stdout, if any, is the detail);
  - 3 → already done: nothing was left to do;
  - 75 (EX_TEMPFAIL, sysexits.h) → transient: tidegate retries with backoff;
  - anything else, or death by a signal → permanent, with the last lines of stderr;
  - still running after `timeout` → its whole process group gets SIGTERM, then SIGKILL
    5 s later (a deploy script's children die with it) → transient.
stdin is /dev/null. Values of `pass_env` variables are redacted from every message.

Observe first. With `observe`, that program (same environment, TIDEGATE_TARGET only) prints
one JSON object `{"version": str, "traffic": 0..100, "paused": bool, "enabled": bool}` (each
optional) and exits 0 (75: transient; anything else: permanent); `apply` runs nothing when
the target already is where the operation would put it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from adapters.actuators.base import AlreadyDone, Applied, Observed, Refused, Result, satisfied
from adapters.credentials import secret
from adapters.errors import Permanent, Transient
from policies.operations import Op, Operation

if TYPE_CHECKING:
    from adapters.actuators.registry import BuildContext

EXIT_APPLIED, EXIT_ALREADY_DONE, EXIT_TEMPFAIL = 0, 3, 75
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for a program past its timeout
STDERR_LINES, STDERR_CHARS = 5, 600  # how much of a failing program's stderr an error keeps


def _argv(value: Any) -> Any:
    if isinstance(value, str):
        example = "[./deploy.sh, --rollback]"
        raise ValueError(
            f"expected a list of arguments, e.g. {example}, not a shell string (no shell runs it)"
        )
    return value


Argv = Annotated[tuple[str, ...], BeforeValidator(_argv), Field(min_length=1)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class CommandSettings(BaseModel):
    """A command target's settings in rollout.yaml; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: Argv
    observe: Argv | None = None
    pass_env: tuple[EnvName, ...] = ()
    timeout: float = Field(default=300.0, gt=0)
    capabilities: Annotated[frozenset[Op], Field(min_length=1)] = frozenset(Op)

    def secret_variables(self) -> tuple[str, ...]:
        return self.pass_env


def capabilities_for(settings: CommandSettings) -> frozenset[Op]:
    return settings.capabilities


def build(name: str, settings: CommandSettings, context: BuildContext) -> Command:
    return Command(name, settings, context.env)


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: str | None = None
    traffic: int | None = Field(default=None, ge=0, le=100)  # a percentage: 0.5 is refused
    paused: bool | None = Field(default=None, strict=True)
    enabled: bool | None = Field(default=None, strict=True)


@dataclass(frozen=True)
class _Finished:
    status: int  # the exit status; -N when killed by signal N
    stdout: str
    stderr: str


class Command:
    """The Actuator Protocol over a local program; see the module docstring."""

    def __init__(self, name: str, settings: CommandSettings, env: Mapping[str, str]) -> None:
        self._name = name
        self._settings = settings
        self._env = env

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> frozenset[Op]:
        return self._settings.capabilities

    def observe(self) -> Observed:
        argv = self._settings.observe
        if argv is None:
            return Observed(detail="no observe command: the target's state is not observed")
        done = self._run(argv, {"TIDEGATE_TARGET": self._name})
        if done.status != EXIT_APPLIED:
            raise self._failure(argv, done)
        try:
            state = _State.model_validate_json(done.stdout)
        except ValidationError as error:
            raise Permanent(self._scrub(f"{self._what(argv)} printed {_explain(error)}")) from None
        return Observed(state.version, state.traffic, state.paused, state.enabled)

    def apply(self, operation: Operation, key: str) -> Result:
        refusal = self._refusal(operation)
        if refusal:
            return Refused(refusal)
        if self._settings.observe is not None and satisfied(operation, self.observe()):
            return AlreadyDone(f"already {operation.describe()} (observed)")
        done = self._run(self._settings.argv, _operation_env(operation, key))
        said = _last_line(self._scrub(done.stdout))  # redact, then shorten: no half secret survives
        detail = operation.describe() + (f": {said}" if said else "")
        if done.status == EXIT_APPLIED:
            return Applied(detail)
        if done.status == EXIT_ALREADY_DONE:
            return AlreadyDone(detail)
        raise self._failure(self._settings.argv, done)

    def _refusal(self, operation: Operation) -> str:
        """Why this operation cannot be run at all, or "" — decided before anything runs."""
        if operation.target != self._name:
            return f"operation for target {operation.target!r} sent to {self._name!r}"
        if operation.op not in self._settings.capabilities:
            return f"command {self._name} cannot {operation.op.value} (settings.capabilities)"
        traffic = operation.traffic
        if operation.op is Op.SET_TRAFFIC and (traffic is None or not 0 <= traffic <= 100):
            return f"set_traffic needs a percentage in 0..100, got {traffic}"
        if operation.op is Op.ROLLBACK and not operation.version:
            return "rollback needs the version to roll back to"
        return ""

    def _run(self, argv: Sequence[str], extra: Mapping[str, str]) -> _Finished:
        env = self._environment(extra)  # AuthFailed for a missing pass_env variable, before starting
        try:
            process = subprocess.Popen(
                list(argv),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: a timeout kills its children too
            )
        except OSError as error:  # not found, not executable
            raise Permanent(self._scrub(f"{self._what(argv)} could not start: {error.strerror}")) from None
        try:
            out, err = process.communicate(timeout=self._settings.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise Transient(
                f"{self._what(argv)} still running after {self._settings.timeout:g}s: "
                "its process group was killed"
            ) from None
        return _Finished(process.returncode, _text(out), _text(err))

    def _environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = {name: self._env[name] for name in INHERITED if name in self._env}
        env.setdefault("PATH", os.defpath)
        env |= {name: secret(self._env, name, self._name) for name in self._settings.pass_env}
        return env | dict(extra)

    def _failure(self, argv: Sequence[str], done: _Finished) -> Transient | Permanent:
        said = _tail(self._scrub(done.stderr))  # redact, then shorten: no half secret survives
        if done.status == EXIT_TEMPFAIL:
            return Transient(self._scrub(f"{self._what(argv)} exited 75 (try again later){said}"))
        if done.status < 0:
            how = f"was killed by {signal.Signals(-done.status).name}"
        else:
            how = f"exited {done.status}"
        return Permanent(self._scrub(f"{self._what(argv)} {how}{said}"))

    def _what(self, argv: Sequence[str]) -> str:
        return f"command {self._name}: {os.path.basename(argv[0])}"

    def _scrub(self, text: str) -> str:
        values = {self._env.get(name, "") for name in self._settings.pass_env}
        for value in sorted((v for v in values if v.strip()), key=len, reverse=True):
            text = text.replace(value, "***")
        return text


def _operation_env(operation: Operation, key: str) -> dict[str, str]:
    return {
        "TIDEGATE_TARGET": operation.target,
        "TIDEGATE_OPERATION": operation.op.value,
        "TIDEGATE_TRAFFIC": "" if operation.traffic is None else str(operation.traffic),
        "TIDEGATE_VERSION": operation.version or "",
        "TIDEGATE_KEY": key,
    }


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the program's whole process group, SIGKILL after a grace period."""
    for sig, grace in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, KILL_GRACE)):
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(process.pid, sig)
        try:
            process.communicate(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
    # A child that left the group (setsid) still holds the pipes: stop waiting for them.
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    process.wait()


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _last_line(stdout: str) -> str:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _tail(stderr: str) -> str:
    """The last lines of (already redacted) stderr, as `: a | b | c`."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()][-STDERR_LINES:]
    return f": {' | '.join(lines)}"[-STDERR_CHARS:] if lines else ""


def _explain(error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "output"
        problems.append(f"{field}: {problem['msg'].lower()} (got {problem.get('input')!r:.80})")
    return "an unexpected state: " + "; ".join(problems)
