"""What notifications cost the rollout they describe (docs/notifications.md).

1. The demo rollout (`tidegate demo`'s scenario through the real Reconciler, store and sandbox
   targets) driven with no notifier, with a healthy Slack, and with two receivers down — one
   that hangs past the request timeout and one that answers 500 — median of `--runs` runs.
2. The Dispatcher's own cost per runtime event (compose, dedupe, render, enqueue: what the
   rollout's thread pays), over the demo's events replayed as many distinct rollouts.

    .venv/bin/python -m bench.notify_overhead [--runs 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from controller.core.model import RolloutId
from controller.notify import SlackSpec, WebhookSpec, build_dispatcher
from controller.notify.dispatch import Dispatcher
from controller.runtime import Event
from tests.fakes.server import FakeVendor, Reply
from tests.fakes.slack import FakeSlack
from tests.notify_helpers import demo


def drive_seconds(observer: Callable[[Event], None]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        with demo(Path(folder), observer):
            pass
        return time.perf_counter() - began


def median_drive(runs: int, make: Callable[[], tuple[Callable[[Event], None], Dispatcher | None]]) -> float:
    times = []
    for _ in range(runs):
        observer, dispatcher = make()
        times.append(drive_seconds(observer))
        if dispatcher is not None:
            dispatcher.close(timeout=0.5)
    return statistics.median(times)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def per_event_microseconds(client: httpx.Client, replays: int) -> tuple[float, int]:
    events: list[Event] = []
    drive_seconds(events.append)
    spec = WebhookSpec.model_validate(
        {"kind": "webhook", "name": "nowhere", "url": f"http://127.0.0.1:{closed_port()}/", "queue": 100_000}
    )
    dispatcher = build_dispatcher([spec], {}, client, sleep=lambda seconds: None)
    renamed = [
        [dataclasses.replace(e, rollout=RolloutId(f"r{i}")) for e in events] for i in range(replays)
    ]  # distinct rollouts: nothing is deduplicated away
    began = time.perf_counter()
    for batch in renamed:
        for event in batch:
            dispatcher(event)
    took = time.perf_counter() - began
    dispatcher.close(timeout=0.5)
    return took / (replays * len(events)) * 1e6, len(events)


def main() -> None:
    logging.getLogger("tidegate.notify").setLevel(logging.ERROR)  # the failures are the point here
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replays", type=int, default=300)
    args = parser.parse_args()
    with httpx.Client() as client, FakeSlack() as slack, FakeVendor() as hung, FakeVendor() as broken:
        hung.inject(Reply(200, {}, delay=5.0), times=10_000)
        broken.inject(Reply(500, {"message": "down"}), times=10_000)
        slack_url = slack.hook()

        def nothing() -> tuple[Callable[[Event], None], Dispatcher | None]:
            return (lambda event: None), None

        def healthy() -> tuple[Callable[[Event], None], Dispatcher | None]:
            spec = SlackSpec.model_validate({"kind": "slack", "name": "ops", "webhook_url_env": "URL"})
            dispatcher = build_dispatcher([spec], {"URL": slack_url}, client)
            return dispatcher, dispatcher

        def down() -> tuple[Callable[[Event], None], Dispatcher | None]:
            specs = [
                WebhookSpec.model_validate(
                    {"kind": "webhook", "name": "hung", "url": f"{hung.url}/hook", "timeout": "300ms"}
                ),
                WebhookSpec.model_validate(
                    {"kind": "webhook", "name": "broken", "url": f"{broken.url}/hook"}
                ),
            ]
            dispatcher = build_dispatcher(specs, {}, client)
            return dispatcher, dispatcher

        rows = [
            (name, median_drive(args.runs, make))
            for name, make in (
                ("no notifier", nothing),
                ("healthy Slack", healthy),
                ("two receivers down (hang, 500)", down),
            )
        ]
        cost, count = per_event_microseconds(client, args.replays)
    print(f"demo rollout, median of {args.runs} runs (10→50→100%, step down, roll back five targets):")
    print("| notifiers | demo rollout wall time |")
    print("|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1000:.0f} ms |")
    print(f"\nDispatcher.__call__: {cost:.1f} µs per event ({args.replays} × {count} demo events)")


if __name__ == "__main__":
    main()
