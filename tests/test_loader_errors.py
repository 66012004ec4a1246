"""Bad policy packs through the real CLI: `FILE:LINE:COL: path: message`, exit 2, never a traceback.

DESIGN.md: "Errors name the file, line, field and what was expected; no traceback reaches the
user." Most cases run the console entry point in-process (fast); a few run the installed
`tidegate` script in a subprocess to check what a shell really sees.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.cli.main import run
from policies.loader import load_pack

TIDEGATE = str(Path(sys.executable).with_name("tidegate"))

HEAD = "apiVersion: tidegate/v1\nkind: PolicyPack\nmetadata: {name: t}\ninterval: 30s\npolicies:\n"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def tidegate(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """The console entry point (`controller.cli.main:run`) in-process, as the shell calls it."""
    monkeypatch.setattr(sys, "argv", ["tidegate", *args])
    with pytest.raises(SystemExit) as exit_:
        run()
    captured = capsys.readouterr()
    code = exit_.value.code
    return Result(code if isinstance(code, int) else 0, captured.out, captured.err)


def script(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TIDEGATE, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def policy(*lines: str) -> str:
    """A pack whose single policy has `lines` (line 6 of the file is `  - id: a`)."""
    return HEAD + "  - id: a\n" + "".join(f"    {line}\n" for line in lines)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


BAD_PACKS = {
    "bad-duration": (
        policy("signal: error_rate", "when: '> 0.05'", "for: five minutes", "action: rollback"),
        "p.yaml:9:10: policies[0].for: expected a duration like 5m, got 'five minutes'",
    ),
    "yaml-syntax": (
        "apiVersion: tidegate/v1\nkind: PolicyPack\nmetadata: {name: t\npolicies: []\n",
        "p.yaml:4:9: YAML syntax error: expected ',' or '}', but got ':'",
    ),
    "wrong-type-number": (
        policy("signal: s", "when: '> 1'", "action: rollback", "min_samples: lots"),
        "p.yaml:10:18: policies[0].min_samples: expected a number, got 'lots'",
    ),
    "wrong-type-string": (
        policy("signal: s", "when: '> 1'", "action: rollback", "description: 5"),
        "p.yaml:10:18: policies[0].description: expected a string, got 5",
    ),
    "wrong-type-list": (
        policy("signal: s", "when: '> 1'", "action: rollback", "targets: flag"),
        "p.yaml:10:14: policies[0].targets: expected a list, got 'flag'",
    ),
    "comparison-not-a-string": (
        policy("signal: s", "when: 0.05", "action: rollback"),
        'p.yaml:8:11: policies[0].when: expected a comparison like "> 0.05", got 0.05',
    ),
    "unknown-field": (
        policy("signal: s", "when: '> 1'", "action: rollback", "treshold: 3"),
        "p.yaml:10:5: policies[0].treshold: unknown field 'treshold' (expected one of: action, "
        "confidence, description, for, id, min_samples, on_no_data, signal, staleness, targets, "
        "when, window)",
    ),
    "unknown-top-level-field": (
        HEAD.replace("interval: 30s", "intervall: 30s")
        + "  - {id: a, signal: s, when: '> 1', action: notify}\n",
        "p.yaml:4:1: intervall: unknown field 'intervall' (did you mean 'interval'? expected one of: "
        "apiVersion, interval, kind, "
        "metadata, policies)",
    ),
    "unknown-operator": (
        policy("signal: s", "when: '=> 1'", "action: rollback"),
        'p.yaml:8:11: policies[0].when: expected an operator (> >= < <=) and a number like "> 0.05", '
        "got '=> 1'",
    ),
    "bad-action": (
        policy("signal: s", "when: '> 1'", "action: explode"),
        "p.yaml:9:13: policies[0].action: expected one of notify, hold, step_down or rollback, got 'explode'",
    ),
    "bad-on-no-data": (
        policy("signal: s", "when: '> 1'", "action: notify", "on_no_data: skip"),
        "p.yaml:10:17: policies[0].on_no_data: expected one of hold, ok or breach, got 'skip'",
    ),
    "duration-without-unit": (
        policy("signal: s", "when: '> 1'", "action: notify", "for: 5"),
        "p.yaml:10:10: policies[0].for: expected a duration with a unit like 5s or 5m, got 5",
    ),
    "duration-units-out-of-order": (
        policy("signal: s", "when: '> 1'", "action: notify", "for: 1m1h"),
        "p.yaml:10:10: policies[0].for: expected a duration like 1h30m (units largest first), got '1m1h'",
    ),
    "negative-duration": (
        policy("signal: s", "when: '> 1'", "action: notify", "for: -5m"),
        "p.yaml:10:10: policies[0].for: expected a duration like 5m, got '-5m'",
    ),
    "confidence-out-of-range": (
        policy("signal: s", "when: '> 1'", "action: notify", "confidence: 1.5"),
        "p.yaml:10:17: policies[0].confidence: input should be less than 1, got 1.5",
    ),
    "drift-magnitude-must-be-a-lower-bound": (
        policy("signal: s", "drift: '< 5%'", "baseline: {window: 1h}", "action: rollback"),
        'p.yaml:8:12: policies[0].drift: expected a magnitude like "> 5%", got "< 0.05"',
    ),
    "match-value-not-a-scalar": (
        policy(
            "signal: incidents", "count: '>= 1'", "within: 1h", "match: {severity: null}", "action: rollback"
        ),
        "p.yaml:10:23: policies[0].match.severity: expected a string, a number or true/false, got None",
    ),
    "missing-required-field": (
        policy("signal: s", "when: '> 1'"),
        "p.yaml:6:5: policies[0]: missing required field 'action'",
    ),
    "missing-within-of-a-count": (
        policy("signal: incidents", "count: '>= 3'", "action: rollback"),
        "p.yaml:6:5: policies[0]: missing required field 'within'",
    ),
    "missing-metadata": (
        "apiVersion: tidegate/v1\nkind: PolicyPack\npolicies:\n"
        "  - {id: a, signal: s, when: '> 1', action: notify}\n",
        "p.yaml:1:1: document: missing required field 'metadata'",
    ),
    "two-rule-keywords": (
        policy("signal: s", "when: '> 1'", "count: '>= 1'", "within: 1h", "action: rollback"),
        "p.yaml:6:5: policies[0]: a policy needs exactly one of when: (threshold), count: (events) or "
        "drift: (change against a baseline); found when: and count:",
    ),
    "no-rule-keyword": (
        policy("signal: s", "action: rollback"),
        "p.yaml:6:5: policies[0]: a policy needs exactly one of when: (threshold), count: (events) or "
        "drift: (change against a baseline); found none",
    ),
    "policy-not-a-mapping": (
        HEAD + "  - 5\n",
        "p.yaml:6:5: policies[0]: expected a mapping (a policy), got int 5",
    ),
    "no-policies": (
        HEAD + "  []\n",
        "p.yaml:6:3: policies: must not be empty",
    ),
    "wrong-api-version": (
        HEAD.replace("tidegate/v1", "tidegate/v2") + "  - {id: a, signal: s, when: '> 1', action: notify}\n",
        "p.yaml:1:13: apiVersion: expected 'tidegate/v1', got 'tidegate/v2'",
    ),
    "bad-policy-id": (
        HEAD + "  - {id: Error-Rate, signal: s, when: '> 1', action: notify}\n",
        "p.yaml:6:10: policies[0].id: expected lower-case letters, digits, '.', '_' or '-', got 'Error-Rate'",
    ),
    "duplicate-id": (
        HEAD
        + "  - {id: a, signal: s, when: '> 1', action: notify}\n"
        + "  - {id: b, signal: s, when: '> 2', action: notify}\n"
        + "  - {id: a, signal: s, when: '> 3', action: rollback}\n",
        "p.yaml:8:10: policies[2].id: duplicate policy id 'a' (first at policies[0])",
    ),
    "duplicate-yaml-key": (
        policy("signal: s", "when: '> 1'", "when: '> 2'", "action: rollback"),
        "p.yaml:9:5: duplicate key 'when'",
    ),
    "empty-file": ("", "p.yaml:1:1: the file is empty"),
    "only-a-comment": ("# nothing yet\n", "p.yaml:1:1: the file is empty"),
    "a-list-instead-of-a-mapping": (
        "- id: a\n- id: b\n",
        "p.yaml:1:1: document: expected a mapping, got a list",
    ),
    "a-bare-string": ("runbook\n", "p.yaml:1:1: document: expected a mapping, got a string"),
    "two-documents": (HEAD + "  - {id: a, signal: s, when: '> 1', action: notify}\n---\na: 1\n", None),
    "non-scalar-key": (policy("signal: s", "when: '> 1'", "action: notify", "? [a]", ": b"), None),
}


@pytest.mark.parametrize("case", sorted(BAD_PACKS))
def test_a_bad_pack_is_one_located_error_and_exit_2(
    case: str, in_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text, expected = BAD_PACKS[case]
    (in_tmp / "p.yaml").write_text(text, encoding="utf-8")
    result = tidegate(capsys, monkeypatch, "policy", "validate", "p.yaml")
    assert (result.code, result.out) == (2, "")
    assert "Traceback" not in result.err
    if expected is None:
        assert result.err.startswith("error: p.yaml:") and result.err.count("\n") == 1
    else:
        assert result.err == f"error: {expected}\n"


def test_the_first_mistake_in_the_file_is_the_one_reported(
    in_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / "p.yaml").write_text(
        policy("signal: s", "action: explode", "when: '> 1'", "for: soon"), encoding="utf-8"
    )
    result = tidegate(capsys, monkeypatch, "policy", "validate", "p.yaml")
    assert result.err == (
        "error: p.yaml:8:13: policies[0].action: expected one of notify, hold, step_down or rollback, "
        "got 'explode'\n"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["missing.yaml"], "missing.yaml: no such file"),
        (["library:nope"], "library:nope: no shipped pack named 'nope' (shipped: runbook)"),
        (["sub"], "sub: is a directory, expected a policy pack file"),
        (["latin1.yaml"], None),
    ],
)
def test_a_pack_that_cannot_be_read_names_the_file(
    args: list[str],
    expected: str | None,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (in_tmp / "sub").mkdir()
    (in_tmp / "latin1.yaml").write_bytes("metadata: {name: caf\xe9}\n".encode("latin-1"))
    result = tidegate(capsys, monkeypatch, "policy", "validate", *args)
    assert (result.code, result.out) == (2, "")
    if expected is None:
        assert result.err.startswith("error: latin1.yaml: cannot read:")
    else:
        assert result.err == f"error: {expected}\n"


def test_an_id_defined_in_two_packs_points_at_the_second(
    in_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / "mine.yaml").write_text(
        HEAD + "  - {id: mine, signal: s, when: '> 1', action: notify}\n"
        "  - id: error-rate\n    signal: s\n    when: '> 1'\n    action: notify\n",
        encoding="utf-8",
    )
    result = tidegate(capsys, monkeypatch, "policy", "validate", "library:runbook", "mine.yaml")
    assert result.code == 2
    assert result.err == (
        "error: mine.yaml:7:9: policies[1].id: policy id 'error-rate' is also defined in library:runbook\n"
    )


def test_the_shipped_runbook_and_a_valid_file_validate(
    in_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / "extra.yaml").write_text(
        policy("signal: queue_depth", "when: '>= 1000'", "for: 1h30m", "action: hold"), encoding="utf-8"
    )
    result = tidegate(capsys, monkeypatch, "policy", "validate", "library:runbook", "extra.yaml")
    shipped = len(load_pack("library:runbook").policies)
    assert result == Result(0, f"library:runbook: ok ({shipped} policies)\nextra.yaml: ok (1 policies)\n", "")


DESIGN_EXAMPLE = """\
apiVersion: tidegate/v1
kind: PolicyPack
metadata: {name: runbook}
interval: 30s                 # evaluation tick; the CLI may override it
policies:
  - id: error-rate
    description: Error rate above 5% for 5 minutes means immediate rollback
    signal: error_rate
    when: "> 0.05"            # one of > >= < <= and a number
    for: 5m
    min_samples: 50           # for ratio signals: denominator needed in the window
    action: rollback          # notify | hold | step_down | rollback
  - id: high-severity-incidents
    signal: incidents
    match: {severity: high}
    count: ">= 3"
    within: 1h
    action: rollback
  - id: kpi-drift
    signal: checkout_conversion
    drift: "> 5%"
    direction: down
    baseline: {window: 1h}    # the hour before the rollout started
    action: rollback
"""


def test_the_pack_shown_in_the_design_validates_as_written(
    in_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / "design.yaml").write_text(DESIGN_EXAMPLE, encoding="utf-8")
    assert tidegate(capsys, monkeypatch, "policy", "validate", "design.yaml") == Result(
        0, "design.yaml: ok (3 policies)\n", ""
    )


def test_explain_prints_one_sentence_per_rule(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = tidegate(capsys, monkeypatch, "policy", "explain", "library:runbook")
    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    pack = load_pack("library:runbook")
    assert [line.split(":")[0] for line in lines] == [p.id for p in pack.policies]
    design_table = {
        "error-rate",
        "high-severity-incidents",
        "kpi-drift",
        "latency-p95",
        "queue-p95",
        "webhook-5xx",
        "db-connections",
        "worker-backlog",
        "worker-oldest-pending",
        "lcp-p75",
    }
    assert design_table <= {p.id for p in pack.policies}  # DESIGN.md's ids are a contract
    assert all(line.endswith(".") and line.count(". ") == 0 for line in lines)
    error_rate = lines[0]
    floor = next(p for p in pack.policies if p.id == "error-rate").min_samples
    assert "5%" in error_rate and "5 minutes" in error_rate and f"{floor:g}" in error_rate
    assert "roll back" in error_rate
    by_id = {line.split(":")[0]: line for line in lines}
    incidents = by_id["high-severity-incidents"]
    assert "3" in incidents and "1 hour" in incidents and "severity=high" in incidents
    confidence = next(p for p in pack.policies if p.id == "kpi-drift").confidence
    assert "5%" in by_id["kpi-drift"] and f"{confidence * 100:g}%" in by_id["kpi-drift"]


def test_explain_of_a_bad_pack_is_the_same_located_error(
    in_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp / "p.yaml").write_text(BAD_PACKS["bad-duration"][0], encoding="utf-8")
    result = tidegate(capsys, monkeypatch, "policy", "explain", "p.yaml")
    assert (result.code, result.out) == (2, "")
    assert result.err == f"error: {BAD_PACKS['bad-duration'][1]}\n"


# --- the installed console script: what a shell or a pipeline really sees -----------------


@pytest.mark.parametrize("case", ["bad-duration", "yaml-syntax"])
def test_the_console_script_exits_2_without_a_traceback(case: str, tmp_path: Path) -> None:
    text, expected = BAD_PACKS[case]
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    done = script(tmp_path, "policy", "validate", "p.yaml")
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {expected}\n")


@pytest.mark.parametrize(
    "args",
    [
        ["policy", "validate"],  # missing argument
        ["no-such-command"],
        ["backtest", "--policy", "library:runbook", "--data"],  # option without its value
    ],
)
def test_usage_errors_exit_2_without_a_traceback(args: list[str], tmp_path: Path) -> None:
    done = script(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip()


def test_the_console_script_validates_the_shipped_pack(tmp_path: Path) -> None:
    done = script(tmp_path, "policy", "validate", "library:runbook")
    shipped = len(load_pack("library:runbook").policies)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"library:runbook: ok ({shipped} policies)\n",
        "",
    )
