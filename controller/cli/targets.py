"""`tidegate targets check rollout.yaml`: the pre-flight checklist the runbooks do by hand.

For every target: its kind; the credentials its settings name (present or missing — names
only, never a value; "none needed" for kinds that read none); whether it answers and what
state it reports (`observe()`, every target at once; an adapter's error is shown, with every
credential value redacted); and which operations each decision would use (the planner's
mapping, as `tidegate plan` prints it). Nothing is changed anywhere: sandbox targets are
observed in a scratch folder, as a new rollout would first see them.

Exit 0 when every target is ready (credentials present and observed without error), 1 when
any is not, 2 when rollout.yaml is wrong. `--json` prints one object on stdout.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from adapters.actuators.base import Observed
from adapters.credentials import NamesSecrets
from controller.core.plan import Intent, TargetPlan, TargetView, plan
from controller.spec import RolloutSpec, TargetSpec, load_rollout, target_views
from policies.errors import TidegateError
from policies.operations import Op

if TYPE_CHECKING:
    import httpx

EXIT_READY, EXIT_NOT_READY = 0, 1


@dataclass(frozen=True)
class TargetCheck:
    name: str
    kind: str
    credentials: Mapping[str, bool] | None  # variable → set; None: the kind reads none
    observed: Observed | None  # None when observing failed
    error: str  # why observing failed (credential values redacted), "" when it did not
    decisions: Mapping[Intent, TargetPlan]

    @property
    def ready(self) -> bool:
        return self.observed is not None and all((self.credentials or {}).values())


def register(app: typer.Typer) -> None:
    targets = typer.Typer(help="Pre-flight checks of a rollout's targets.", no_args_is_help=True)
    targets.command("check")(check_command)
    app.add_typer(targets, name="targets")


def check_command(
    rollout: Annotated[str, typer.Argument(help="rollout.yaml")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Credentials, reachability, current state and planned operations of every target."""
    spec = load_rollout(rollout)
    checks = check_targets(spec, os.environ)
    if as_json:
        print(json.dumps(_document(spec, checks)))
    else:
        for line in _lines(spec, checks):
            print(line)
    raise typer.Exit(EXIT_READY if all(c.ready for c in checks) else EXIT_NOT_READY)


def check_targets(spec: RolloutSpec, env: Mapping[str, str]) -> list[TargetCheck]:
    """Check every target of `spec`, all at once (a slow or dead one delays only itself)."""
    import httpx  # here, not at the top: see controller.bootstrap.build_actuators

    views = target_views(spec)
    decisions = {intent: plan(intent, None, spec.previous_version, views) for intent in Intent}
    with tempfile.TemporaryDirectory(prefix="tidegate-check-") as scratch, httpx.Client() as client:

        def check(target: TargetSpec, view: TargetView) -> TargetCheck:
            variables = _secret_variables(target)
            observed, error = _observe(target, variables, env, Path(scratch), client)
            credentials = (
                None if variables is None else {name: bool(env.get(name, "").strip()) for name in variables}
            )
            mapping = {intent: _for(decisions[intent].targets, target.name) for intent in Intent}
            kind = target.kind if view.kind == target.kind else f"{target.kind}, emulating {view.kind}"
            return TargetCheck(target.name, kind, credentials, observed, error, mapping)

        with ThreadPoolExecutor(max_workers=max(1, min(16, len(spec.targets)))) as pool:
            return list(pool.map(check, spec.targets, views))


def _secret_variables(target: TargetSpec) -> tuple[str, ...] | None:
    """The variables a target's settings name as its credentials; None when its kind names none."""
    from adapters.actuators.registry import ACTUATORS, Kind  # see check_targets

    kind = ACTUATORS[target.kind]
    if not isinstance(kind, Kind):
        return None
    settings = kind.settings.model_validate(target.settings)  # valid: load_rollout checked it
    return settings.secret_variables() if isinstance(settings, NamesSecrets) else None


def _observe(
    target: TargetSpec,
    variables: tuple[str, ...] | None,
    env: Mapping[str, str],
    scratch: Path,
    client: httpx.Client,
) -> tuple[Observed | None, str]:
    from adapters.actuators.registry import build_actuator  # see check_targets

    try:
        actuator = build_actuator(
            target.kind, target.name, target.settings, state_dir=scratch / target.name, env=env, http=client
        )
        return actuator.observe(), ""
    except TidegateError as error:
        text = str(error)
        values = {env.get(name, "") for name in variables or ()}
        for value in sorted((v for v in values if v.strip()), key=len, reverse=True):
            text = text.replace(value, "***")
        return None, text


def _for(plans: tuple[TargetPlan, ...], name: str) -> TargetPlan:
    return next(p for p in plans if p.target == name)


def _operations(target_plan: TargetPlan) -> list[str]:
    # The planner was asked without a traffic level: name set_traffic, the step comes at run time.
    return [
        op.describe() if op.op is not Op.SET_TRAFFIC else "set_traffic(step)" for op in target_plan.operations
    ]


def _state(observed: Observed) -> str:
    parts = []
    if observed.version is not None:
        parts.append(f"version {observed.version}")
    if observed.traffic is not None:
        parts.append(f"traffic {observed.traffic}%")
    if observed.paused is not None:
        parts.append("paused" if observed.paused else "not paused")
    if observed.enabled is not None:
        parts.append("enabled" if observed.enabled else "disabled")
    state = ", ".join(parts) or "nothing reported"
    return state + (f" ({observed.detail})" if observed.detail else "")


def _lines(spec: RolloutSpec, checks: list[TargetCheck]) -> list[str]:
    lines = [f"targets of {spec.name}:"]
    for check in checks:
        lines.append(f"  {check.name} ({check.kind}): {'ready' if check.ready else 'NOT READY'}")
        if check.credentials is None:
            credentials = "none needed"
        else:
            credentials = ", ".join(
                f"{name} {'set' if present else 'MISSING'}" for name, present in check.credentials.items()
            )
        lines.append(f"    {'credentials':<12} {credentials or 'none named in settings'}")
        if check.observed is not None:
            lines.append(f"    {'state':<12} {_state(check.observed)}")
        else:
            lines.append(f"    {'state':<12} NOT OBSERVED: {check.error}")
        for intent, target_plan in check.decisions.items():
            text = ", ".join(_operations(target_plan)) or "nothing"
            note = f"  ({target_plan.note})" if target_plan.note else ""
            lines.append(f"    {intent.value:<12} {text}{note}")
            if target_plan.manual is not None:
                lines.append(f"    {'':<12} PAGE a human: {target_plan.manual.reason}")
    ready = sum(c.ready for c in checks)
    lines.append(f"{len(checks)} target(s): {ready} ready, {len(checks) - ready} not ready")
    return lines


def _document(spec: RolloutSpec, checks: list[TargetCheck]) -> dict[str, object]:
    return {
        "rollout": spec.name,
        "ready": all(c.ready for c in checks),
        "targets": [
            {
                "name": c.name,
                "kind": c.kind,
                "ready": c.ready,
                "credentials": None if c.credentials is None else dict(c.credentials),
                "observed": None
                if c.observed is None
                else {
                    "version": c.observed.version,
                    "traffic": c.observed.traffic,
                    "paused": c.observed.paused,
                    "enabled": c.observed.enabled,
                    "detail": c.observed.detail,
                },
                "error": c.error or None,
                "decisions": {
                    intent.value: {
                        "operations": _operations(p),
                        "note": p.note or None,
                        "page": p.manual.reason if p.manual is not None else None,
                    }
                    for intent, p in c.decisions.items()
                },
            }
            for c in checks
        ],
    }
