"""`tidegate plan | gate | run | rollback | pause | resume | promote | status | audit`.

Each command is thin: parse options, ask bootstrap for the pieces, run the core, print.
Progress goes to stderr — one line per event, or on a terminal the live view (cli/live.py);
results to stdout (`--json` for scripts).
"""

from __future__ import annotations

import getpass
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, TextIO

import click
import typer
from rich.console import Console

from adapters.sources.replay import ReplayData
from controller.bootstrap import (
    Signals,
    build_evaluator,
    live_rollout,
    live_sources,
    lookback,
    new_rollout_id,
    policies_of,
    read_history,
    read_signals,
    state_dir,
    was_lowered,
)
from controller.cli import remote
from controller.cli.live import Heading, LiveView
from controller.cli.options import positive_duration
from controller.cli.status import (
    StatusRow,
    print_json,
    print_lines,
    status_rows,
    status_table,
    watch_status,
    watch_table,
)
from controller.cli.view import last_told, observer_for, wants_live
from controller.core.model import RolloutId, RolloutStatus, State
from controller.core.plan import Intent, plan
from controller.driver import Mode, Outcome, ReadCursor, drive, drive_live
from controller.runtime import AUTOMATIC, LiveRollout, Reconciler
from controller.spec import RolloutSpec, load_rollout, spec_from_json, target_views
from controller.store import open_store
from controller.store.base import AuditDraft, RolloutRecord, SourceRead, Store
from policies.durations import parse_duration
from policies.errors import TidegateError
from policies.timestamps import format_timestamp

REPLAY_REDRAW = 0.05  # seconds between frames of a replay: it ticks far faster than anyone reads
StateOption = Annotated[str | None, typer.Option("--state", help="Store file (default .tidegate/state.db).")]
LiveOption = Annotated[
    bool | None,
    typer.Option(
        "--live/--plain",
        help="Live view, or one plain line per event (default: live on a terminal; $TIDEGATE_VIEW).",
    ),
]
ServerOption = Annotated[
    str | None, typer.Option("--server", help="A tidegate serve URL; the token comes from $TIDEGATE_TOKEN.")
]


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
    raise typer.Exit(_drive(spec, Mode.RUN, state, as_json=as_json, live=live))


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
    code = _drive(spec, Mode.GATE, state, as_json=as_json, watch=seconds, dry_run=dry_run, live=live)
    raise typer.Exit(code)


def _drive(
    spec: RolloutSpec,
    mode: Mode,
    state: str | None,
    *,
    as_json: bool,
    watch: float | None = None,
    dry_run: bool = False,
    signals: Signals | None = None,
    echo: TextIO | None = None,
    live: bool | None = False,
    console: Console | None = None,
) -> int:
    """Run or gate `spec` to its verdict. Progress goes to `echo` (stderr): a line per event, or
    the live view when `live` (None: on a terminal, see view.wants_live) or onto `console`."""
    drawn = console is not None or wants_live(live, echo or sys.stderr, as_json=as_json)
    policies, interval = policies_of(spec)
    sources = live_sources(spec) if signals is None else []
    store = open_store(state)
    try:
        record = None if (dry_run or mode is Mode.GATE) else _unfinished(store, spec.name)
        lowered = record is not None and was_lowered(store, record.id)
        history: list[SourceRead] = []
        cursor = ReadCursor()
        if sources:
            # Live: the rollout starts now (or when the unfinished one started); its evaluator
            # starts from the history the rules need, then each tick reads what is new.
            now = time.time()
            start = record.created_at if record is not None else now
            since = start - lookback(policies)
            signals, history = read_history(sources, since, now, policies)
            signals = Signals(signals.data, start, now, signals.events_given)
            cursor = ReadCursor.after_history(history, since, now, max(lookback(policies), interval))
            for read in history:
                if read.error is not None:
                    print(f"warning: {read.source}: {read.error}", file=sys.stderr)
        else:
            signals = signals or read_signals(spec)
        if record is None:
            record = _new_record(spec, mode, signals.start)
            if not dry_run:
                store.create_rollout(record, _created_audit(record, mode))
        evaluator = build_evaluator(policies, signals)
        rollout = live_rollout(record, spec, evaluator, state_dir(), lowered=lowered)
        command = f"{mode.value} (dry run: nothing is touched)" if dry_run else mode.value
        heading = Heading(command, signals.start, replay=not sources)
        view = _live_view(rollout, store, heading, echo, console) if drawn else None
        reconciler = Reconciler(store, view.observe if view else observer_for(echo), dry_run=dry_run)
        on_tick = view.tick if view is not None else _no_tick
        try:
            if view is not None:
                view.start()
            if sources:
                reconciler.record_reads(rollout, history)
                until = signals.start + watch if watch is not None else math.inf
                result = drive_live(
                    reconciler,
                    rollout,
                    sources,
                    start=signals.start,
                    interval=interval,
                    until=until,
                    mode=mode,
                    cursor=cursor,
                    on_tick=on_tick,
                )
            else:
                until = min(signals.start + watch, signals.end) if watch is not None else signals.end
                result = drive(
                    reconciler,
                    rollout,
                    start=signals.start,
                    interval=interval,
                    until=until,
                    mode=mode,
                    on_tick=on_tick,
                )
        finally:
            if view is not None:
                view.close()  # the last frame stays on screen above the result
        _report(rollout, result, mode, as_json=as_json, dry_run=dry_run)
        return result.code
    finally:
        store.close()


def _live_view(
    rollout: LiveRollout, store: Store, heading: Heading, echo: TextIO | None, console: Console | None
) -> LiveView:
    """The live view on `console`, else on `echo` (stderr); plain lines to `echo` if it fails."""
    return LiveView(
        rollout,
        console or Console(file=echo or sys.stderr, force_terminal=True, highlight=False),
        heading,
        told=lambda: last_told(store.intents(rollout.id)),
        fallback=observer_for(echo),
        redraw_every=REPLAY_REDRAW if heading.replay else 0.0,
    )


def _no_tick(now: float) -> None:
    pass


def _unfinished(store: Store, name: str) -> RolloutRecord | None:
    # Only what a `run` started: a healthy gate leaves its watch progressing at the last
    # step, and a run that adopted it would skip the whole traffic ladder.
    active = [
        r
        for r in store.list_rollouts()
        if r.name == name and not r.status.state.terminal and _created_mode(store, r) == Mode.RUN.value
    ]
    return latest(store, active) if active else None


def _created_mode(store: Store, record: RolloutRecord) -> object:
    """The mode (run | gate) the rollout's "created" audit row records, None if there is none."""
    first = store.audit_log(record.id)[:1]
    return json.loads(first[0].payload_json).get("mode") if first and first[0].kind == "created" else None


def latest(store: Store, records: list[RolloutRecord]) -> RolloutRecord:
    """The most recently created of `records`. Rollouts replayed from the same data share
    `created_at` (the data's start), so ties go to creation order: the id of the rollout's
    first audit row, written in the same transaction as the rollout."""

    def created(record: RolloutRecord) -> tuple[float, int]:
        first = store.audit_log(record.id)[:1]
        return record.created_at, first[0].id if first else 0

    return max(records, key=created)


def _new_record(spec: RolloutSpec, mode: Mode, start: float) -> RolloutRecord:
    if mode is Mode.GATE:  # a gate watches the release where it is: the last forward step
        status = RolloutStatus(State.PROGRESSING, spec.steps[-1].traffic, len(spec.steps) - 1, start)
    else:
        status = RolloutStatus(State.PENDING, 0, 0, start)
    return RolloutRecord(
        RolloutId(new_rollout_id(spec.name)), spec.name, spec.model_dump_json(), status, start
    )


def _created_audit(record: RolloutRecord, mode: Mode) -> AuditDraft:
    spec = spec_from_json(record.spec_json)
    payload = {"mode": mode.value, "version": spec.version, "previous_version": spec.previous_version}
    return AuditDraft(record.created_at, AUTOMATIC, "created", record.id, payload)


def _report(rollout: LiveRollout, result: Outcome, mode: Mode, *, as_json: bool, dry_run: bool) -> None:
    verdict = rollout.last_verdict
    firing = [s for s in rollout.last_states if s.status.value == "breach"]
    document = {
        "rollout": rollout.id,
        "mode": mode.value,
        "dry_run": dry_run,
        "exit_code": result.code,
        "summary": result.summary,
        "state": rollout.status.state.value,
        "traffic": rollout.status.traffic,
        "decision": verdict.decision.value if verdict else None,
        "firing": [{"policy": s.policy.id, "value": s.value} for s in firing],
    }
    if as_json:
        print(json.dumps(document))
    else:
        prefix = "dry run, nothing was touched: " if dry_run else ""
        print(f"{rollout.id}: {prefix}{result.summary} (exit {result.code})")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file and mode is Mode.GATE:
        _append_step_summary(Path(summary_file), document)


def _append_step_summary(path: Path, document: Mapping[str, object]) -> None:
    lines = [
        f"## tidegate gate: {document['rollout']}",
        "",
        f"**Result:** {document['summary']} (exit {document['exit_code']})",
        f"**Decision:** {document['decision']}; state {document['state']} at {document['traffic']}%",
        "",
    ]
    firing = document["firing"]
    if isinstance(firing, list) and firing:
        lines += ["| firing policy | value |", "|---|---|"]
        lines += [f"| {f['policy']} | {f['value']} |" for f in firing]
        lines.append("")
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


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
            record = _find(store, rollout)
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


def _find(store: Store, ref: str) -> RolloutRecord:
    record = store.get_rollout(RolloutId(ref))
    if record is not None:
        return record
    named = [r for r in store.list_rollouts() if r.name == ref]
    if not named:
        raise TidegateError(f"no rollout {ref!r} in the store (see tidegate status)")
    return latest(store, named)


# --- status and audit ----------------------------------------------------------------


def status_command(
    rollout: Annotated[str | None, typer.Argument(help="Rollout id or name; all when omitted.")] = None,
    state: StateOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Show it again every --interval until Ctrl-C.")
    ] = False,
    interval: Annotated[str, typer.Option(help="With --watch: how often, e.g. 2s.")] = "2s",
    live: LiveOption = None,
) -> None:
    """Rollouts in the store: state, traffic, last reason, targets, and how each source's reads went."""
    every = positive_duration("--interval", interval)
    table = not as_json and wants_live(live, sys.stdout, as_json=False)
    store = open_store(state)
    try:

        def collect() -> list[StatusRow]:
            return status_rows(store, [_find(store, rollout)] if rollout else store.list_rollouts())

        if watch and table:
            watch_table(collect, Console(force_terminal=True, highlight=False), every)
        elif watch:  # a pipe or a log: one snapshot after another (JSON: one array per line)
            watch_status(collect, print_json if as_json else _lines_and_gap, every)
        elif as_json:
            print_json(collect())
        elif table:
            Console(force_terminal=True, highlight=False).print(status_table(collect()))
        else:
            print_lines(collect())
    finally:
        store.close()


def _lines_and_gap(rows: list[StatusRow]) -> None:
    print_lines(rows)
    print(flush=True)


def audit_log_command(
    rollout: Annotated[str | None, typer.Argument(help="Rollout id or name; all when omitted.")] = None,
    state: StateOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The audit log: decisions, transitions, actions and manual acts with actor and reason."""
    store = open_store(state)
    try:
        rollout_id = _find(store, rollout).id if rollout else None
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
