"""/metrics: what a tidegate replica did, for the team's own Prometheus.

One registry per Service (tests run several in one process). Rule states and rollout states
are aggregated counts, not one series per rollout: 10,000 rollouts × 10 rules must not become
100,000 series. Per-rollout detail is in the API.
"""

from __future__ import annotations

import time
from collections import Counter as Counter_
from collections.abc import Iterable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from adapters.actuators.base import Actuator, Observed, Result
from controller.core.model import State
from controller.runtime import Event, LiveRollout
from policies.operations import Op, Operation
from policies.rules.base import Status


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "tidegate_decisions", "Decision changes, by decision.", ["decision"], registry=self.registry
        )
        self.transitions = Counter(
            "tidegate_transitions", "Rollout transitions, by trigger.", ["trigger"], registry=self.registry
        )
        self.actions = Counter(
            "tidegate_actions",
            "Operations sent to targets, by outcome (applied, already_done, refused, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.actuation_seconds = Histogram(
            "tidegate_actuation_seconds",
            "Time for one operation on one target, retries included, by target kind.",
            ["kind", "outcome"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.pages = Counter("tidegate_pages", "Times a human was paged.", registry=self.registry)
        self.rule_states = Gauge(
            "tidegate_rule_states",
            "Rules of the rollouts this replica holds, by status at their last evaluation.",
            ["status"],
            registry=self.registry,
        )
        self.rollouts = Gauge(
            "tidegate_rollouts", "Rollouts this replica holds, by state.", ["state"], registry=self.registry
        )
        self.tick_seconds = Histogram(
            "tidegate_tick_seconds",
            "Time for one rollout step (read, evaluate, decide, journal, actuate).",
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.leases_held = Gauge(
            "tidegate_leases_held", "Rollouts leased to this replica.", registry=self.registry
        )
        self.takeovers = Counter(
            "tidegate_lease_takeovers", "Leases taken over from another replica.", registry=self.registry
        )
        self.handbacks = Counter(
            "tidegate_lease_handbacks",
            "Leases beyond this replica's fair share handed back for another replica to take.",
            registry=self.registry,
        )
        self.webhook_events = Counter(
            "tidegate_webhook_events",
            "New events stored from webhooks.",
            ["endpoint"],
            registry=self.registry,
        )
        self.webhook_rejected = Counter(
            "tidegate_webhook_rejected",
            "Webhook deliveries refused (bad signature, stale, replayed, malformed).",
            ["endpoint", "reason"],
            registry=self.registry,
        )
        self.source_errors = Counter(
            "tidegate_source_errors", "Source reads that gave no data.", registry=self.registry
        )
        self.notifications = Gauge(
            "tidegate_notifications",
            "Notifications per notifier since start, by result (sent, failed, dropped, pending).",
            ["notifier", "result"],
            registry=self.registry,
        )

    def observe(self, event: Event) -> None:
        """The runtime's events, counted from their details (the Service observes with this)."""
        details = event.details
        if event.kind == "decision" and "decision" in details:
            self.decisions.labels(decision=str(details["decision"])).inc()
        elif event.kind == "transition" and "trigger" in details:
            self.transitions.labels(trigger=str(details["trigger"])).inc()
        elif event.kind == "action" and "outcome" in details:
            self.actions.labels(outcome=str(details["outcome"])).inc()
        elif event.kind == "page":
            self.pages.inc()
        elif event.kind == "source":
            self.source_errors.inc()

    def refresh(self, service: Holder) -> None:
        """Gauges from what the replica holds now (called on each scrape)."""
        for name, counts in service.notification_counts().items():
            for result in ("sent", "failed", "dropped", "pending"):
                self.notifications.labels(notifier=name, result=result).set(getattr(counts, result))
        states: Counter_[str] = Counter_()
        rules: Counter_[str] = Counter_()
        for rollout in service.held_rollouts():
            states[rollout.status.state.value] += 1
            rules.update(state.status.value for state in rollout.last_states)
        for state in State:
            self.rollouts.labels(state=state.value).set(states[state.value])
        for status in Status:
            self.rule_states.labels(status=status.value).set(rules[status.value])

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def timed(self, kind: str, actuator: Actuator) -> Actuator:
        return TimedActuator(actuator, kind, self.actuation_seconds)


class Holder(Protocol):
    def held_rollouts(self) -> Iterable[LiveRollout]: ...

    def notification_counts(self) -> Mapping[str, Counts]: ...


class Counts(Protocol):
    @property
    def sent(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def pending(self) -> int: ...


class TimedActuator:
    """An actuator whose every apply is timed into `tidegate_actuation_seconds`."""

    def __init__(self, inner: Actuator, kind: str, histogram: Histogram) -> None:
        self.inner = inner
        self.kind = kind
        self.histogram = histogram

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def capabilities(self) -> frozenset[Op]:
        return self.inner.capabilities

    def observe(self) -> Observed:
        return self.inner.observe()

    def apply(self, operation: Operation, key: str) -> Result:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = self.inner.apply(operation, key)
            outcome = type(result).__name__.lower()
            return result
        finally:
            self.histogram.labels(kind=self.kind, outcome=outcome).observe(time.perf_counter() - started)
