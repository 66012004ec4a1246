"""`tidegate run | gate` on a terminal: one live picture of the rollout instead of a scroll.

People watching a release want to look, not read logs: each rule with its status and value,
what each target was last told and what it answered, the last few events, where the rollout
stands, and the clock (the data's time on a replay). The view is an observer of the runtime's
events plus the driver's tick hook; it reads the rollout and the journal, never changes them.

Drawing must never break a rollout: a failure is logged once and the view falls back to the
plain lines (view.observer_for) for the rest of the run.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from controller.cli.status import OUTCOME_STYLE, STATE_STYLE
from controller.cli.view import EVENT_STYLE
from controller.core.model import State
from controller.runtime import Event, LiveRollout, Observer
from controller.store.base import Intent
from policies.durations import format_duration
from policies.explain import condition
from policies.rules.base import RuleState, Status
from policies.timestamps import format_timestamp

log = logging.getLogger("tidegate.cli")

RULE_STYLE = {Status.OK: "green", Status.PENDING: "yellow", Status.BREACH: "bold red", Status.NO_DATA: "dim"}
RECENT_EVENTS = 8


@dataclass(frozen=True)
class Heading:
    """What the view says above the tables: which command, on which clock."""

    command: str  # "run", "gate", "gate (dry run: nothing is touched)"
    start: float  # the rollout's start on its clock
    replay: bool  # replayed signals run on a virtual clock: the data's time, not the wall's


class LiveView:
    """Redraws on each event (`observe`) and each tick (`tick`); `close` leaves the last frame."""

    def __init__(
        self,
        rollout: LiveRollout,
        console: Console,
        heading: Heading,
        *,
        told: Callable[[], Mapping[str, Intent]],
        fallback: Observer,
        redraw_every: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rollout = rollout
        self.heading = heading
        self.now = heading.start
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self._console = console
        self._told_source = told
        self._told: Mapping[str, Intent] | None = None  # read again after actions
        self._fallback = fallback
        # Replays tick thousands of times a second; a person sees at most ~20 frames of it.
        self._redraw_every = redraw_every
        self._monotonic = monotonic
        self._drawn_at = -math.inf
        self._live: Live | None = None
        self.failed = False

    # --- the observer and the tick hook ----------------------------------------------

    def start(self) -> None:
        try:
            self._live = Live(self.render(), console=self._console, auto_refresh=False)
            self._live.start(refresh=True)
            self._drawn_at = self._monotonic()
        except Exception as exc:  # a view must never stop a rollout
            self._fail(exc)

    def observe(self, event: Event) -> None:
        if self.failed:
            self._fallback(event)
            return
        self.recent.append(event)
        self.now = max(self.now, event.at)
        if event.kind in ("action", "recovery"):
            self._told = None
        self._draw()

    def tick(self, now: float) -> None:
        self.now = now
        if not self.failed:
            self._draw()

    def close(self) -> None:
        """Draw the final frame and hand the terminal back (after Ctrl-C too)."""
        live, self._live = self._live, None
        if live is None:
            return
        try:
            live.update(self.render())
            live.stop()
        except Exception as exc:
            self._fail(exc, live)

    def _draw(self) -> None:
        if self._live is None or self._monotonic() - self._drawn_at < self._redraw_every:
            return
        try:
            self._live.update(self.render(), refresh=True)
            self._drawn_at = self._monotonic()
        except Exception as exc:
            self._fail(exc, self._live)

    def _fail(self, exc: Exception, live: Live | None = None) -> None:
        log.warning("live view failed (%s: %s); plain lines from here", type(exc).__name__, exc)
        log.debug("live view failure", exc_info=True)
        self.failed, self._live = True, None
        if live is not None:
            try:
                live.stop()
            except Exception:  # the terminal is already in trouble; the lines below still go out
                log.debug("live view did not stop cleanly", exc_info=True)
        for event in self.recent:  # what the last frame may not have shown
            self._fallback(event)

    # --- the picture -----------------------------------------------------------------

    def render(self) -> RenderableType:
        if self._told is None:
            self._told = self._told_source()
        return Group(self._header(), self._rules(), self._targets(self._told), self._events())

    def _header(self) -> Text:
        status, heading = self.rollout.status, self.heading
        text = Text()  # appended parts carry their own styles (a Text's own style covers all)
        text.append(f"tidegate {heading.command} · ", style="bold")
        text.append(f"{self.rollout.id}\n", style="bold cyan")
        text.append(status.state.value, style=STATE_STYLE.get(status.state.value, ""))
        text.append(f" at {status.traffic}%{_step(self.rollout)}")
        text.append(f" · since {_clock(status.since)} ({_ago(self.now - status.since)})")
        if status.reason:
            text.append(f" · {status.reason}", style="italic")
        clock = "virtual clock, replayed signals" if heading.replay else "wall clock, live sources"
        text.append(f"\n{format_timestamp(self.now)}", style="bold")
        text.append(f"  +{_ago(self.now - heading.start)} since start ({clock})", style="dim")
        return text

    def _rules(self) -> Table:
        table = _table("rules")
        table.add_column("rule", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("value", justify="right", no_wrap=True)
        table.add_column("since", no_wrap=True)
        table.add_column("condition", ratio=1)
        for state in self.rollout.last_states:
            table.add_row(
                state.policy.id,
                Text(state.status.value, style=RULE_STYLE[state.status]),
                "—" if state.value is None else f"{state.value:.4g}",
                self._streak(state),
                Text(condition(state.policy), style="dim"),
            )
        return table

    def _streak(self, state: RuleState) -> str:
        if state.since is None or state.status not in (Status.PENDING, Status.BREACH):
            return ""
        return f"{_clock(state.since)} ({_ago(self.now - state.since)})"

    def _targets(self, told: Mapping[str, Intent]) -> Table:
        table = _table("targets: what each was last told")
        for name in ("target", "kind"):
            table.add_column(name, no_wrap=True)
        table.add_column("last told", ratio=1)
        table.add_column("outcome", no_wrap=True)
        table.add_column("at", no_wrap=True)
        for target in self.rollout.targets:
            intent = told.get(target.name)
            if intent is None:
                table.add_row(target.name, target.kind, Text("nothing yet", style="dim"), "", "")
                continue
            outcome = intent.outcome or "unfinished"
            at = intent.finished_at if intent.finished_at is not None else intent.created_at
            table.add_row(
                target.name,
                target.kind,
                intent.operation.describe(),
                Text(outcome, style=OUTCOME_STYLE.get(outcome, "")),
                _clock(at),
            )
        return table

    def _events(self) -> Table:
        table = _table(f"last {RECENT_EVENTS} events")
        table.add_column("at", no_wrap=True, style="dim")
        table.add_column("event", no_wrap=True)
        table.add_column("what", ratio=1)
        for event in self.recent:
            style = EVENT_STYLE.get(event.kind, "")
            table.add_row(_clock(event.at), Text(event.kind, style=style), Text(event.text, style=style))
        return table


def _table(title: str) -> Table:
    # no outer frame: three tables and a header fit a laptop terminal's height
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        expand=True,
    )


def _step(rollout: LiveRollout) -> str:
    status, shape = rollout.status, rollout.shape
    ladder = {State.PROGRESSING: shape.steps, State.STEPPING_DOWN: shape.down_steps}.get(status.state)
    if not ladder or not 0 <= status.step < len(ladder):
        return ""
    down = "down " if status.state is State.STEPPING_DOWN else ""
    return (
        f", {down}step {status.step + 1} of {len(ladder)} (bake {format_duration(ladder[status.step].bake)})"
    )


def _clock(at: float) -> str:
    """HH:MM:SS UTC: the date is in the header, and a rollout is watched within hours."""
    return format_timestamp(at)[11:19]


def _ago(seconds: float) -> str:
    return format_duration(max(0, round(seconds)))
