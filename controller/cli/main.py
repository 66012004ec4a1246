"""The `tidegate` command. Errors are rendered here, once: a message and exit 2, no traceback."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import click
import typer

from adapters.sources.replay import ReplayData, read_replay
from controller.backtest import BacktestResult, run_backtest
from controller.cli.options import positive_duration
from controller.cli.report import register as register_report_command
from controller.cli.rollouts import register as register_rollout_commands
from controller.cli.serve import register as register_serve_commands
from controller.cli.signals import register as register_signal_commands
from controller.cli.targets import register as register_target_commands
from controller.cli.timeline import render_timeline
from policies.errors import TidegateError
from policies.explain import explain_pack
from policies.loader import load_packs
from policies.schema import Policy
from policies.timestamps import format_timestamp, parse_timestamp

app = typer.Typer(
    name="tidegate",
    help="Automated rollback decisions: codified runbooks that watch rollout signals.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Validate and explain policy packs.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

EXIT_OK, EXIT_LOWERED, EXIT_USAGE = 0, 1, 2
register_rollout_commands(app)
register_serve_commands(app)
register_target_commands(app)
register_signal_commands(app)
register_report_command(app)


def _err(message: str) -> None:
    print(message, file=sys.stderr)


@policy_app.command("validate")
def policy_validate(
    packs: Annotated[list[str], typer.Argument(help="Pack files or library:NAME.")],
) -> None:
    """Check packs; exit 0 when all are valid, 2 with FILE:LINE:COL otherwise."""
    for pack, ref in zip(load_packs(packs), packs, strict=True):
        print(f"{ref}: ok ({len(pack.policies)} policies)")


@policy_app.command("explain")
def policy_explain(
    packs: Annotated[list[str], typer.Argument(help="Pack files or library:NAME.")],
) -> None:
    """One plain sentence per rule."""
    for pack in load_packs(packs):
        for sentence in explain_pack(pack):
            print(sentence)


@app.command()
def backtest(
    policy: Annotated[
        list[str], typer.Option("--policy", "-p", help="Pack file or library:NAME (repeatable).")
    ],
    data: Annotated[str | None, typer.Option(help="CSV: timestamp,signal,value.")] = None,
    events: Annotated[str | None, typer.Option(help="JSON Lines events (incidents, alerts).")] = None,
    start: Annotated[str | None, typer.Option(help="Rollout start, RFC 3339 or unix seconds.")] = None,
    interval: Annotated[str | None, typer.Option(help="Tick interval (default: the pack's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    strict: Annotated[bool, typer.Option(help="Unbound signals are an error.")] = False,
    from_source: Annotated[
        str | None, typer.Option("--from-source", help="rollout.yaml whose live sources to read.")
    ] = None,
    since: Annotated[str, typer.Option(help="With --from-source: how much history, e.g. 7d.")] = "1d",
    report: Annotated[
        str | None, typer.Option(help="Also write the report: FILE.html (charts), .md or .json.")
    ] = None,
) -> None:
    """Replay recorded signals through the policies; exit 1 if any tick stepped down or rolled back."""
    if data is None and events is None and from_source is None:
        raise click.UsageError("give --data and/or --events, or --from-source rollout.yaml")
    packs = load_packs(policy)
    policies = [p for pack in packs for p in pack.policies]
    tick = positive_duration("--interval", interval) if interval else packs[0].interval
    begin = _timestamp_option("--start", start) if start else None
    if from_source is not None:
        recorded, events_given = _history_from_sources(
            from_source, positive_duration("--since", since), policies
        )
    else:
        recorded, events_given = read_replay(data, events), events is not None
    result = run_backtest(policies, recorded, start=begin, interval=tick, events_given=events_given)
    for policy_ in result.unbound:
        message = f"policy {policy_.id!r}: signal {policy_.signal!r} does not appear in the data"
        if strict:
            raise TidegateError(message + " (--strict)")
        _err(f"warning: {message}; skipped")
    if report is not None:
        _write_backtest_report(report, result, recorded, events_given, policies, ", ".join(policy))
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        for line in render_timeline(result, ", ".join(policy)):
            print(line)
    raise typer.Exit(EXIT_LOWERED if result.lowered_traffic else EXIT_OK)


def _write_backtest_report(
    path: str,
    result: BacktestResult,
    data: ReplayData,
    events_given: bool,
    policies: list[Policy],
    title: str,
) -> None:
    """The same pictures as `tidegate report`, from the backtest's data and decisions."""
    from pathlib import Path

    from controller.bootstrap import Signals
    from controller.report import backtest_report, render

    signals = Signals(data, result.start, result.end, events_given)
    page = backtest_report(result, signals, policies, title, time.time())
    suffix = Path(path).suffix.lower()
    fmt = {".md": "md", ".json": "json"}.get(suffix, "html")
    Path(path).write_text(render(page, fmt), encoding="utf-8")
    _err(f"report: {path}")


def _history_from_sources(rollout: str, since: float, policies: list[Policy]) -> tuple[ReplayData, bool]:
    """The bound signals' history from the rollout's live sources (a failing one is warned)."""
    from controller.bootstrap import live_sources, read_history
    from controller.spec import load_rollout

    now = time.time()
    signals, reads = read_history(live_sources(load_rollout(rollout)), now - since, now, policies)
    for read in reads:
        if read.error is not None:
            _err(f"warning: {read.source}: {read.error}")
    return signals.data, bool(signals.data.events)


def _timestamp_option(name: str, text: str) -> float:
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


@app.command()
def simulate(
    out: Annotated[str, typer.Option(help="Directory for data.csv and events.jsonl.")],
    scenario: Annotated[str, typer.Option(help="'demo', or 'healthy' with --seed.")] = "demo",
    seed: Annotated[int, typer.Option(help="Seed for a healthy release.")] = 1,
) -> None:
    """Write a simulated release as backtest input files (the demo's scenario by default)."""
    from pathlib import Path

    from adapters.sources.replay import write_events, write_samples
    from controller.simulator import ReleaseSpec, demo_spec
    from controller.simulator import simulate as run_simulation

    specs = {"demo": demo_spec(), "healthy": ReleaseSpec(seed=seed)}
    if scenario not in specs:
        raise click.BadParameter(f"expected one of {', '.join(specs)}", param_hint="--scenario")
    result = run_simulation(specs[scenario])
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rows = write_samples(str(folder / "data.csv"), result.data.columns)
    events = write_events(str(folder / "events.jsonl"), result.data.events)
    print(f"{folder}/data.csv: {rows} samples; {folder}/events.jsonl: {events} events")
    print(f"rollout start: {format_timestamp(result.start)} (pass it as --start)")


@app.command()
def demo() -> None:
    """Backtest the bundled checkout-regression scenario with the runbook pack."""
    from controller.demo import run_demo

    raise typer.Exit(run_demo())


def run() -> None:
    """Console entry point: exit codes 0/1/3 from commands, 2 for any usage or input error."""
    try:
        code = app(standalone_mode=False)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except typer.TyperException as exc:
        # typer vendors its own click: its parse errors (missing option, no such command)
        # are not click's classes, and would otherwise escape as a traceback.
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            _err(f"Error: {exc.format_message()}")
        sys.exit(EXIT_USAGE)
    except (click.exceptions.Abort, typer.Abort):
        _err("aborted")
        sys.exit(130)
    except TidegateError as exc:
        _err(f"error: {exc}")
        sys.exit(EXIT_USAGE)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    run()
