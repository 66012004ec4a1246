"""The replay source: recorded signals from files, for backtests and the demo.

Formats (DESIGN.md backtest contract):
- samples CSV, header `timestamp,signal,value`; timestamps RFC 3339 or unix seconds; rows in
  any order; a ratio signal is given as `name:num` and `name:den` rows;
- events JSON Lines, one object per line with `timestamp`, `signal`, optional `id`; every
  other field is matchable by a count rule's `match`.
Bad rows are DataErrors naming file and row, e.g. `data.csv:3: value 'abc' is not a number`.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from policies.errors import DataError
from policies.evaluator import SignalKind
from policies.series import Event
from policies.timestamps import format_timestamp, parse_timestamp

_SIGNAL = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)(?::(num|den))?$")
HEADER = ["timestamp", "signal", "value"]


@dataclass
class ReplayData:
    """Columns keyed by the CSV's signal spelling (`error_rate:num`), each sorted by time."""

    columns: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def kinds(self) -> dict[str, SignalKind]:
        kinds: dict[str, SignalKind] = {}
        for column in self.columns:
            name, _, part = column.partition(":")
            kinds[name] = SignalKind.RATIO if part else SignalKind.PLAIN
        for event in self.events:
            kinds.setdefault(event.signal, SignalKind.EVENTS)
        return kinds

    def span(self) -> tuple[float, float] | None:
        """(first, last) timestamp over samples and events, None when there are none."""
        firsts = [times[0] for times, _ in self.columns.values() if times]
        lasts = [times[-1] for times, _ in self.columns.values() if times]
        if self.events:
            firsts.append(min(e.time for e in self.events))
            lasts.append(max(e.time for e in self.events))
        return (min(firsts), max(lasts)) if firsts else None


def read_samples(path: str) -> dict[str, tuple[list[float], list[float]]]:
    columns = _read_columnar(path)
    if columns is None:  # anything unusual: the row-by-row reader decides, and names the row
        columns = _read_rows(path)
    _check_ratio_pairs(path, columns)
    for times, values in columns.values():
        _sort_in_place(times, values)
    return columns


def _read_rows(path: str) -> dict[str, tuple[list[float], list[float]]]:
    rows = _open_csv(path)
    header = next(rows, None)
    if header is None:
        raise DataError(path, 1, "the file is empty; expected a header timestamp,signal,value")
    if [h.strip() for h in header] != HEADER:
        raise DataError(path, 1, f"expected the header timestamp,signal,value, got {','.join(header)!r}")
    try:
        columns = _read_fast(rows)
    except (ValueError, KeyError, TypeError):
        _find_bad_row(path)  # raises with the exact row and reason
        raise DataError(path, None, "unreadable samples file") from None
    return columns


def _open_csv(path: str) -> Iterator[list[str]]:
    try:
        # utf-8-sig: spreadsheets export CSV with a byte-order mark before the header.
        handle = Path(path).open(newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed by the generator
    except FileNotFoundError:
        raise DataError(path, None, "no such file") from None
    except OSError as exc:
        raise DataError(path, None, f"cannot read: {exc.strerror}") from None

    def rows() -> Iterator[list[str]]:
        with handle:
            try:
                yield from csv.reader(handle)
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DataError(path, None, f"not a readable CSV file: {exc}") from None

    return rows()


# Bytes a samples CSV's structure is made of; `translate` deletes every other byte, and a
# well-formed file leaves exactly ",,\n" per row.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b",\n")
_CHUNK_BYTES = 1 << 16  # parsed at a time: its fields stay in the CPU cache, memory stays flat


def _read_columnar(path: str) -> dict[str, tuple[list[float], list[float]]] | None:
    """The whole file column-wise with C-level string operations, or None when the file is
    anything but plain (quotes, stray CRs, NULs, a row without exactly three fields, a bad
    value or name): then the row-by-row reader reads it and reports the first bad row.

    Without quotes a CSV row is its line split at commas, so `split` and slicing do what
    `csv.reader` and a per-row loop did, at a fraction of the cost (docs/performance.md).
    """
    columns: dict[str, tuple[list[float], list[float]]] = {}
    try:
        with Path(path).open("rb") as handle:
            chunks = _line_chunks(handle)
            first = next(chunks, b"").removeprefix(codecs.BOM_UTF8)
            header, _, rest = first.partition(b"\n")
            if [h.strip() for h in header.decode().split(",")] != HEADER:
                return None
            for chunk in itertools.chain((rest,), chunks):
                if chunk:
                    _add_chunk(columns, _fields(chunk))
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    return columns


def _line_chunks(handle: BinaryIO) -> Iterator[bytes]:
    """The file in blocks of whole lines, each ending with a newline (one is added to a
    last line without)."""
    carry = b""
    while block := handle.read(_CHUNK_BYTES):
        block = carry + block
        cut = block.rfind(b"\n") + 1
        carry = block[cut:]
        if cut:
            yield block[:cut]
    if carry:
        yield carry + b"\n"


def _fields(chunk: bytes) -> list[str]:
    """The fields of a block of lines, flattened; ValueError unless every line is plain."""
    if b"\r" in chunk and chunk.count(b"\r") == chunk.count(b"\r\n"):
        chunk = chunk.replace(b"\r\n", b"\n")  # spreadsheets' line ends
    if b'"' in chunk or b"\r" in chunk or b"\x00" in chunk:
        raise ValueError("not a plain CSV block")
    if chunk.translate(None, _NOT_STRUCTURE) != b",,\n" * chunk.count(b"\n"):
        raise ValueError("a row without exactly three fields")
    return chunk[:-1].decode().replace("\n", ",").split(",")


def _add_chunk(columns: dict[str, tuple[list[float], list[float]]], fields: list[str]) -> None:
    """Rows of one chunk (flattened fields) onto their columns; ValueError on any bad field.

    Recorded scrapes repeat the same signals in the same order (one row per signal per
    scrape); then a column is a stride slice. Any other order is grouped row by row.
    """
    signals = fields[1::3]
    times, values = _timestamps(fields[0::3]), _numbers(fields[2::3])
    order = list(dict.fromkeys(signals[:1024]))
    for signal in order:
        if _SIGNAL.match(signal) is None:
            raise ValueError(signal)
    period = len(order)
    if all(signals[k::period].count(signal) == len(signals[k::period]) for k, signal in enumerate(order)):
        for k, signal in enumerate(order):
            column = columns.setdefault(signal, ([], []))
            column[0].extend(times[k::period])
            column[1].extend(values[k::period])
        return
    for time, signal, value in zip(times, signals, values, strict=True):
        found = columns.get(signal)
        if found is None:
            if _SIGNAL.match(signal) is None:
                raise ValueError(signal)
            found = columns[signal] = ([], [])
        found[0].append(time)
        found[1].append(value)


def _timestamps(stamps: list[str]) -> list[float]:
    """`parse_timestamp` of each stamp, parsed once per distinct stamp: the columns of one
    scrape then share one float per time. Unix seconds are what `float` reads (a number
    is never shaped like a date), in one C loop."""
    unique = list(dict.fromkeys(stamps))
    try:
        times = _numbers(unique)
    except ValueError:
        times = list(map(parse_timestamp, unique))
    parsed = dict(zip(unique, times, strict=True))
    return list(map(parsed.__getitem__, stamps))


def _numbers(texts: list[str]) -> list[float]:
    numbers = list(map(float, texts))
    # A finite sum means every term is finite: one C loop instead of a check per value.
    if not math.isfinite(sum(numbers)) and not all(map(math.isfinite, numbers)):
        raise ValueError("not a finite number")
    return numbers


def _read_fast(rows: Iterator[list[str]]) -> dict[str, tuple[list[float], list[float]]]:
    """The hot loop: 2.6 M rows for a month of 10 s data. Any oddity → slow, precise path."""
    stamps: dict[str, float] = {}
    columns: dict[str, tuple[list[float], list[float]]] = {}
    isfinite = math.isfinite
    for stamp, signal, text in rows:
        time = stamps.get(stamp)
        if time is None:
            time = stamps[stamp] = parse_timestamp(stamp)
        value = float(text)
        if not isfinite(value):
            raise ValueError(text)
        column = columns.get(signal)
        if column is None:
            if _SIGNAL.match(signal) is None:
                raise ValueError(signal)
            column = columns[signal] = ([], [])
        column[0].append(time)
        column[1].append(value)
    return columns


def _find_bad_row(path: str) -> None:
    for line, row in enumerate(_open_csv(path), start=1):
        if line == 1:
            continue
        if len(row) != 3:
            raise DataError(path, line, f"expected 3 fields (timestamp,signal,value), got {len(row)}")
        stamp, signal, text = row
        try:
            parse_timestamp(stamp)
        except ValueError as exc:
            raise DataError(path, line, str(exc)) from None
        if _SIGNAL.match(signal) is None:
            raise DataError(path, line, f"signal {signal!r} is not a name, name:num or name:den")
        try:
            value = float(text)
        except ValueError:
            raise DataError(path, line, f"value {text!r} is not a number") from None
        if not math.isfinite(value):
            raise DataError(path, line, f"value {text!r} is not a finite number")


def _check_ratio_pairs(path: str, columns: dict[str, tuple[list[float], list[float]]]) -> None:
    for column in columns:
        name, _, part = column.partition(":")
        if part and name in columns:
            raise DataError(path, None, f"signal {name!r} has both plain rows and {column!r} rows")
        other = f"{name}:{'den' if part == 'num' else 'num'}"
        if part and other not in columns:
            raise DataError(path, None, f"ratio signal {name!r} has {column!r} rows but no {other!r} rows")


def _sort_in_place(times: list[float], values: list[float]) -> None:
    ordered = sorted(times)  # timsort: one C pass when already in order
    if ordered == times:
        return
    pairs = sorted(zip(times, values, strict=True), key=lambda pair: pair[0])  # stable: file order on ties
    times[:] = [t for t, _ in pairs]
    values[:] = [v for _, v in pairs]


def read_events(path: str) -> list[Event]:
    try:
        handle = Path(path).open(encoding="utf-8-sig")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise DataError(path, None, "no such file") from None
    except OSError as exc:
        raise DataError(path, None, f"cannot read: {exc.strerror}") from None
    events = []
    with handle:
        for line, text in enumerate(handle, start=1):
            if text.strip():
                events.append(_event(path, line, text))
    events.sort(key=lambda e: e.time)
    return events


def _event(path: str, line: int, text: str) -> Event:
    try:
        raw: Any = json.loads(text.rstrip("\r\n"))  # else an unfinished object errs at "column 1"
    except json.JSONDecodeError as exc:
        raise DataError(path, line, f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise DataError(path, line, "expected a JSON object per line")
    for required in ("timestamp", "signal"):
        if required not in raw:
            raise DataError(path, line, f"missing field {required!r}")
    signal, stamp, ident = raw.pop("signal"), raw.pop("timestamp"), raw.pop("id", None)
    if not isinstance(signal, str) or _SIGNAL.match(signal) is None or ":" in signal:
        raise DataError(path, line, f"signal {signal!r} is not a name")
    if isinstance(stamp, bool) or not isinstance(stamp, str | int | float):
        raise DataError(path, line, f"timestamp {stamp!r} is not RFC 3339 or unix seconds")
    try:
        time = parse_timestamp(str(stamp))
    except ValueError as exc:
        raise DataError(path, line, str(exc)) from None
    if ident is not None and (isinstance(ident, bool) or not isinstance(ident, str | int)):
        raise DataError(path, line, f"id {ident!r} must be a string or an integer")
    return Event(time, signal, None if ident is None else str(ident), raw)


def read_replay(samples: str | None, events: str | None) -> ReplayData:
    return ReplayData(
        columns=read_samples(samples) if samples else {},
        events=read_events(events) if events else [],
    )


def write_samples(path: str, columns: dict[str, tuple[list[float], list[float]]]) -> int:
    """Write columns in the samples CSV format, time-ordered; returns the row count."""
    rows = sorted(
        (time, name, value)
        for name, (times, values) in columns.items()
        for time, value in zip(times, values, strict=True)
    )
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows((format_timestamp(time), name, repr(value)) for time, name, value in rows)
    return len(rows)


def write_events(path: str, events: list[Event]) -> int:
    with Path(path).open("w", encoding="utf-8") as handle:
        for event in sorted(events, key=lambda e: e.time):
            stamp = format_timestamp(event.time)
            record = {"timestamp": stamp, "signal": event.signal, "id": event.id, **event.fields}
            handle.write(json.dumps(record) + "\n")
    return len(events)
