"""`tidegate plan | gate | run | rollback | pause | resume | promote | status | audit`.

Each command is thin: parse options, ask bootstrap for the pieces, run the core, print.
`run` and `gate` drive the rollout in cli/drive.py; `status` lives with its views in
cli/status.py. Results go to stdout (`--json` for scripts).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from typing import Annotated

import click
import typer

from adapters.sources.replay import ReplayData
from controller.bootstrap import Signals, build_evaluator, live_rollout, policies_of, state_dir, was_lowered
from controller.cli import remote
from controller.cli.drive import drive_rollout
from controller.cli.lookup import find_rollout
from controller.cli.options import LiveOption, ServerOption, StateOption
from controller.cli.status import status_command
from controller.cli.view import observer_for
from controller.core.plan import Intent, plan
from controller.driver import Mode
from controller.runtime import Reconciler
from controller.spec import RolloutSpec, load_rollout, spec_from_json, target_views
from controller.store import open_store
from policies.durations import parse_duration
from policies.timestamps import format_timestamp


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
    app.command("gate")(gate_command)
    app.command("run")(run_command)
    for trigger in ("rollback", "pause", "resume", "promote"):
        app.command(trigger, help=f"{trigger.capitalize()} a rollout by hand (audited).")(_manual(trigger))
    app.command("status")(status_command)
    audit = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
    audit.command("log")(audit_log_command)
    audit.command("verify")(audit_verify_command)
    app.add_typer(audit, name="audit")


# --- plan ----------------------------------------------------------------------------


def plan_command(
    rollout: Annotated[str, typer.Argument(help="rollout.yaml")],
    decision: Annotated[str, typer.Option(help="rollback | step_down | pause | resume | promote | advance")],
    traffic: Annotated[int | None, typer.Option(help="Traffic % for step_down/advance/resume.")] = None,
) -> None:
    """Print what each target would be told for a decision, acting on nothing."""
    spec = load_rollout(rollout)
    try:
        intent = Intent(decision)
    except ValueError:
        choices = ", ".join(i.value for i in Intent)
        raise click.BadParameter(f"expected one of {choices}", param_hint="--decision") from None
    level = traffic if traffic is not None else _default_traffic(spec, intent)
    result = plan(intent, level, spec.previous_version, target_views(spec))
    print(f"plan for {spec.name}: {intent.value}" + (f" to {level}%" if level is not None else ""))
    for target in result.targets:
        ops = ", ".join(op.describe() for op in target.operations) or "nothing"
        note = f"  ({target.note})" if target.note else ""
        print(f"  {target.target:<24} {ops}{note}")
        if target.manual is not None:
            print(f"  {'':<24} PAGE a human: {target.manual.reason}")


def _default_traffic(spec: RolloutSpec, intent: Intent) -> int | None:
    if intent is Intent.STEP_DOWN:
        return spec.down_steps[0].traffic if spec.down_steps else 0
    if intent in (Intent.ADVANCE, Intent.RESUME):
        return spec.steps[0].traffic
    if intent is Intent.PROMOTE:
        return 100
    return None


# --- run and gate --------------------------------------------------------------------


def run_command(
    rollout: Annotated[str, typer.Argument(help="rollout.yaml")],
    state: StateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Result as JSON on stdout.")] = False,
    live: LiveOption = None,
) -> None:
    """Drive the progressive rollout in the foreground; resumes an unfinished one of the same name."""
    spec = load_rollout(rollout)
    raise typer.Exit(drive_rollout(spec, Mode.RUN, state, as_json=as_json, live=live))


def gate_command(
    rollout: Annotated[str, typer.Argument(help="rollout.yaml")],
    watch: Annotated[str, typer.Option("--for", help="How long to watch, e.g. 15m.")] = "15m",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and plan, but touch nothing.")] = False,
    state: StateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Result as JSON on stdout.")] = False,
    live: LiveOption = None,
) -> None:
    """Watch a release without stepping traffic up: exit 0 healthy, 1 rolled back, 3 inconclusive."""
    try:
        seconds = parse_duration(watch)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    spec = load_rollout(rollout)
    code = drive_rollout(spec, Mode.GATE, state, as_json=as_json, watch=seconds, dry_run=dry_run, live=live)
    raise typer.Exit(code)


# --- manual acts ---------------------------------------------------------------------


def _manual(trigger: str) -> Callable[..., None]:
    def command(
        rollout: Annotated[str, typer.Argument(help="Rollout id or name (its latest rollout).")],
        reason: Annotated[str, typer.Option(help="Why: recorded in the audit log.")],
        actor: Annotated[str | None, typer.Option(help="Who (default: the OS user).")] = None,
        state: StateOption = None,
        server: ServerOption = None,
    ) -> None:
        if not reason.strip():
            raise click.BadParameter("a reason is required", param_hint="--reason")
        if server is not None:  # the server audits the act under the token's name
            print(remote.act(server, trigger, rollout, reason.strip()))
            return
        store = open_store(state)
        try:
            record = find_rollout(store, rollout)
            spec = spec_from_json(record.spec_json)
            policies, _ = policies_of(spec)
            empty = Signals(ReplayData(), record.created_at, record.created_at, events_given=False)
            evaluator = build_evaluator(policies, empty)
            live = live_rollout(record, spec, evaluator, state_dir(), lowered=was_lowered(store, record.id))
            reconciler = Reconciler(store, observer_for())
            now = max(record.status.since, record.created_at)
            move = reconciler.manual(live, trigger, now, actor or getpass.getuser(), reason)
            after = f"{live.status.state.value} at {live.status.traffic}%"
            print(f"{record.id}: {move.before.state.value} → {after}")
        finally:
            store.close()

    command.__name__ = f"{trigger}_command"
    return command


# --- audit ---------------------------------------------------------------------------


def audit_log_command(
    rollout: Annotated[str | None, typer.Argument(help="Rollout id or name; all when omitted.")] = None,
    state: StateOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The audit log: decisions, transitions, actions and manual acts with actor and reason."""
    store = open_store(state)
    try:
        rollout_id = find_rollout(store, rollout).id if rollout else None
        entries = store.audit_log(rollout_id)
    finally:
        store.close()
    for entry in entries:
        if as_json:
            row = {
                "id": entry.id,
                "at": format_timestamp(entry.at),
                "actor": entry.actor,
                "kind": entry.kind,
                "rollout": entry.rollout_id,
                "payload": json.loads(entry.payload_json),
                "hash": entry.hash,
            }
            print(json.dumps(row))
        else:
            stamp = format_timestamp(entry.at)
            print(f"{entry.id:>5} {stamp} {entry.actor:<12} {entry.kind:<10} {entry.payload_json}")


def audit_verify_command(state: StateOption = None) -> None:
    """Check the hash chain: exit 0 when it holds, 1 naming the first bad row."""
    store = open_store(state)
    try:
        report = store.verify_audit()
    finally:
        store.close()
    if report.ok:
        print(f"audit chain intact: {report.rows} rows")
        return
    print(f"audit chain BROKEN at row {report.first_bad}: {report.reason}")
    raise typer.Exit(1)
