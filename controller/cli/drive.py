"""Driving a rollout to its verdict in the foreground: what `tidegate run` and `gate` do.

`drive_rollout` opens the store, adopts an unfinished run of the same name or records a new
rollout, reads the signals (the live sources, or the spec's replay data), ticks the core until
the verdict, and prints the result: one line, or JSON (`--json`), plus a GitHub step summary
for a gate. Progress goes to stderr — one line per event, or the live view (cli/live.py).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from rich.console import Console

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
from controller.cli.live import Heading, LiveView
from controller.cli.lookup import latest
from controller.cli.view import last_told, observer_for, wants_live
from controller.core.model import RolloutId, RolloutStatus, State
from controller.driver import Mode, Outcome, ReadCursor, drive, drive_live
from controller.runtime import AUTOMATIC, LiveRollout, Reconciler
from controller.spec import RolloutSpec, spec_from_json
from controller.store import open_store
from controller.store.base import AuditDraft, RolloutRecord, SourceRead, Store

REPLAY_REDRAW = 0.05  # seconds between frames of a replay: it ticks far faster than anyone reads


def drive_rollout(
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
