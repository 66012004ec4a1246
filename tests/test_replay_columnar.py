"""The column-wise samples reader reads exactly what the row-by-row `csv.reader` path reads.

`read_samples` tries `_read_columnar` first (C-level splits and slices, docs/performance.md)
and falls back to `_read_rows` on anything unusual. Whenever the fast reader returns
columns, they must equal the row reader's to the bit (`repr` tells -0.0 from 0.0); when
the file is bad, the fast reader must give up so that the row reader names the row.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sources.replay import _read_columnar, _read_rows
from policies.errors import DataError

STAMPS = ["1767225600", "1767225630.5", " 1767225660 ", "2026-01-01T00:00:00Z", "2026-01-01T00:00:30+01:00",
          "1.76722566e9", "nan", "inf", "2026-01-01T00:00:00", "", "abc", "1_767_225_600", "-0"]  # fmt: skip
SIGNALS = ["q", "latency_p95", "error_rate:num", "error_rate:den", "inf", "1bad", "a b", "", "x:total"]
VALUES = ["1", "0.5", "-0", "-0.0", "1e3", " 2 ", "1_000", "nan", "-inf", "1e400", "", "abc", "+.5", "7."]
GOOD = st.tuples(st.sampled_from(STAMPS[:6]), st.sampled_from(SIGNALS[:5]), st.sampled_from(VALUES[:7]))
Row = st.one_of(  # mostly good rows, so that many files are good and take the columnar path
    GOOD.map(",".join),
    GOOD.map(",".join),
    GOOD.map(",".join),
    st.tuples(st.sampled_from(STAMPS), st.sampled_from(SIGNALS), st.sampled_from(VALUES)).map(",".join),
    st.sampled_from(['1767225600,q,"1"', "1767225600,q,1,2", "1767225600,q", "", "1767225600,q,1\r", "\x00"]),
)


def outcome(read: object, path: Path) -> str:
    try:
        columns = read(str(path))  # type: ignore[operator]
    except DataError as error:
        return f"error: {error}"
    return "none" if columns is None else repr(sorted(columns.items()))


def write(path: Path, rows: list[str], *, bom: bool, crlf: bool, final_newline: bool) -> None:
    end = "\r\n" if crlf else "\n"
    text = end.join(["timestamp,signal,value", *rows]) + (end if final_newline else "")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(Row, max_size=30),
    bom=st.booleans(),
    crlf=st.booleans(),
    final_newline=st.booleans(),
)
def test_the_columnar_reader_reads_what_the_row_reader_reads_or_gives_up(
    tmp_path: Path, rows: list[str], bom: bool, crlf: bool, final_newline: bool
) -> None:
    path = tmp_path / "data.csv"
    write(path, rows, bom=bom, crlf=crlf, final_newline=final_newline)
    fast = outcome(_read_columnar, path)
    if fast != "none":
        assert fast == outcome(_read_rows, path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scrapes=st.integers(1, 3000),
    names=st.lists(st.sampled_from(SIGNALS[:4]), min_size=1, max_size=4, unique=True),
    shuffle=st.randoms(),
    rfc=st.booleans(),
)
def test_well_formed_files_take_the_columnar_path_in_any_row_order(
    tmp_path: Path, scrapes: int, names: list[str], shuffle: object, rfc: bool
) -> None:
    stamp = "2026-01-01T00:{:02d}:{:02d}Z" if rfc else "17672256{:02d}.{:02d}"
    rows = [
        f"{stamp.format(k // 60 % 60, k % 60)},{name},{k * 7 % 11 - 3}"
        for k in range(scrapes)
        for name in names
    ]
    if scrapes % 2:
        shuffle.shuffle(rows)  # type: ignore[attr-defined]
    path = tmp_path / "data.csv"
    write(path, rows, bom=False, crlf=False, final_newline=True)
    fast = outcome(_read_columnar, path)
    assert fast != "none"
    assert fast == outcome(_read_rows, path)
