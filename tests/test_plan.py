"""The planner: a decision × each target's capabilities → operations (docs/rollouts.md, the planner
table), and `tidegate plan` printing that mapping through the real console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapters.actuators.registry import capabilities_of
from adapters.actuators.sandbox import Emulated
from controller.core.plan import Intent, Plan, TargetPlan, TargetView, plan
from policies.operations import ManualStep, Op, Operation

REPO = Path(__file__).resolve().parent.parent
TIDEGATE = str(Path(sys.executable).with_name("tidegate"))
PAGE = "PAGE"
IOS_PAGE = " " * 27 + "PAGE a human: app-store cannot roll back by API: ship 2.3.9 (or a fix) by hand"

# What each emulated vendor is told for each intent at 50% traffic, rolling back to 2.3.9.
# Written out literally from docs/rollouts.md (capability table × planner table).
EXPECTED: dict[Emulated, dict[Intent, list[str]]] = {
    Emulated.LAUNCHDARKLY: {
        Intent.ADVANCE: ["set_traffic(50%)"],
        Intent.STEP_DOWN: ["set_traffic(50%)"],
        Intent.ROLLBACK: ["disable"],
        Intent.PAUSE: [],
        Intent.RESUME: ["set_traffic(50%)"],
        Intent.PROMOTE: ["set_traffic(100%)"],
    },
    Emulated.APPCONFIG: {  # the deployment strategy owns the percentage
        Intent.ADVANCE: [],
        Intent.STEP_DOWN: [],
        Intent.ROLLBACK: ["rollback(to 2.3.9)"],
        Intent.PAUSE: [],
        Intent.RESUME: [],
        Intent.PROMOTE: [],
    },
    Emulated.ARGOCD: {
        Intent.ADVANCE: [],
        Intent.STEP_DOWN: ["pause"],
        Intent.ROLLBACK: ["rollback(to 2.3.9)"],
        Intent.PAUSE: ["pause"],
        Intent.RESUME: ["resume"],
        Intent.PROMOTE: ["resume"],
    },
    Emulated.ARGO_ROLLOUTS: {  # weights move only through the Rollout's own canary steps
        Intent.ADVANCE: [],
        Intent.STEP_DOWN: ["pause"],
        Intent.ROLLBACK: ["rollback(to 2.3.9)"],
        Intent.PAUSE: ["pause"],
        Intent.RESUME: ["resume"],
        Intent.PROMOTE: ["resume"],
    },
    Emulated.GOOGLE_PLAY: {
        Intent.ADVANCE: ["set_traffic(50%)"],
        Intent.STEP_DOWN: ["set_traffic(50%)"],
        Intent.ROLLBACK: ["rollback(to 2.3.9)"],
        Intent.PAUSE: ["pause"],
        Intent.RESUME: ["resume", "set_traffic(50%)"],
        Intent.PROMOTE: ["set_traffic(100%)", "resume"],
    },
    Emulated.VERCEL: {
        Intent.ADVANCE: ["set_traffic(50%)"],
        Intent.STEP_DOWN: ["set_traffic(50%)"],
        Intent.ROLLBACK: ["rollback(to 2.3.9)"],
        Intent.PAUSE: [],
        Intent.RESUME: ["set_traffic(50%)"],
        Intent.PROMOTE: ["set_traffic(100%)"],
    },
    Emulated.SUPABASE_FUNCTIONS: {
        Intent.ADVANCE: [],
        Intent.STEP_DOWN: [],
        Intent.ROLLBACK: ["rollback(to 2.3.9)"],
        Intent.PAUSE: [],
        Intent.RESUME: [],
        Intent.PROMOTE: [],
    },
    Emulated.APP_STORE: {
        Intent.ADVANCE: [],
        Intent.STEP_DOWN: ["pause"],
        Intent.ROLLBACK: ["pause", PAGE],
        Intent.PAUSE: ["pause"],
        Intent.RESUME: ["resume"],
        Intent.PROMOTE: ["resume"],
    },
}
EXPECTED[Emulated.UNLEASH] = EXPECTED[Emulated.LAUNCHDARKLY]
EXPECTED[Emulated.GENERIC] = EXPECTED[Emulated.GOOGLE_PLAY]  # can do everything


def view(emulates: Emulated, name: str = "t", overrides: dict[Intent, Op | None] | None = None) -> TargetView:
    settings = {"emulates": emulates.value}
    return TargetView(name, emulates.value, capabilities_of("sandbox", settings), overrides or {})


def told(target: TargetPlan) -> list[str]:
    return [op.describe() for op in target.operations] + ([PAGE] if target.manual else [])


def test_every_emulation_has_an_expected_row() -> None:
    assert set(EXPECTED) == set(Emulated)


@pytest.mark.parametrize("intent", list(Intent))
@pytest.mark.parametrize("emulates", list(Emulated))
def test_each_intent_on_each_capability_set(emulates: Emulated, intent: Intent) -> None:
    result = plan(intent, 50, "2.3.9", [view(emulates)])
    assert result.intent is intent
    (target,) = result.targets
    assert told(target) == EXPECTED[emulates][intent]
    assert all(operation.target == "t" for operation in target.operations)


def test_operations_carry_their_arguments() -> None:
    result = plan(Intent.ROLLBACK, None, "2.3.9", [view(Emulated.VERCEL, "web")])
    assert result.operations == [Operation("web", Op.ROLLBACK, version="2.3.9")]
    result = plan(Intent.STEP_DOWN, 10, "2.3.9", [view(Emulated.VERCEL, "web")])
    assert result.operations == [Operation("web", Op.SET_TRAFFIC, traffic=10)]


def test_app_store_rollback_is_a_pause_and_a_page() -> None:
    result = plan(Intent.ROLLBACK, 0, "2.3.9", [view(Emulated.APP_STORE, "ios-app")])
    assert result.operations == [Operation("ios-app", Op.PAUSE)]
    assert result.manual_steps == [
        ManualStep("ios-app", "app-store cannot roll back by API: ship 2.3.9 (or a fix) by hand")
    ]
    assert result.targets[0].note == "paused; a human must finish the rollback"


def test_a_target_that_can_neither_roll_back_disable_nor_pause_only_pages() -> None:
    traffic_only = TargetView("cdn", "custom", frozenset({Op.SET_TRAFFIC}))
    (target,) = plan(Intent.ROLLBACK, 0, "2.3.9", [traffic_only]).targets
    assert target.operations == ()
    assert target.manual == ManualStep("cdn", "custom cannot roll back by API: ship 2.3.9 (or a fix) by hand")


def test_rollback_prefers_a_real_rollback_over_flag_off() -> None:
    both = TargetView("flag", "appconfig", frozenset({Op.ROLLBACK, Op.DISABLE, Op.PAUSE}))
    assert told(plan(Intent.ROLLBACK, 0, "1.0", [both]).targets[0]) == ["rollback(to 1.0)"]


@pytest.mark.parametrize(
    ("intent", "op", "expected"),
    [
        (Intent.ROLLBACK, Op.ENABLE, ["enable"]),  # a beta banner switched ON when things go wrong
        (Intent.STEP_DOWN, Op.ENABLE, ["enable"]),
        (Intent.ADVANCE, Op.DISABLE, ["disable"]),
        (Intent.STEP_DOWN, Op.SET_TRAFFIC, ["set_traffic(50%)"]),  # the intent's traffic
        (Intent.PAUSE, Op.ROLLBACK, ["rollback(to 2.3.9)"]),  # the previous version
        (Intent.ROLLBACK, None, []),  # `none`: nothing at all, not even a page
        (Intent.PROMOTE, None, []),
    ],
)
def test_on_overrides_replace_the_default(intent: Intent, op: Op | None, expected: list[str]) -> None:
    (target,) = plan(intent, 50, "2.3.9", [view(Emulated.GENERIC, overrides={intent: op})]).targets
    assert told(target) == expected
    assert target.note == ("on: override: none" if op is None else "on: override")


def test_an_override_for_one_intent_leaves_the_others_alone() -> None:
    banner = view(Emulated.LAUNCHDARKLY, "beta-banner", {Intent.ROLLBACK: Op.ENABLE, Intent.ADVANCE: None})
    assert told(plan(Intent.STEP_DOWN, 10, "1.0", [banner]).targets[0]) == ["set_traffic(10%)"]


def test_app_store_rollback_overridden_to_none_does_not_page() -> None:
    (target,) = plan(
        Intent.ROLLBACK, 0, "1.0", [view(Emulated.APP_STORE, overrides={Intent.ROLLBACK: None})]
    ).targets
    assert (target.operations, target.manual) == ((), None)


def test_a_plan_keeps_the_targets_order() -> None:
    names = ["b", "a", "c"]
    result = plan(Intent.ROLLBACK, 0, "1", [view(Emulated.VERCEL, n) for n in names])
    assert [t.target for t in result.targets] == names
    assert isinstance(result, Plan)
    assert [op.target for op in result.operations] == names


# --- `tidegate plan` through the installed console script --------------------------------


def tidegate_plan(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TIDEGATE, "plan", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_plan_cli_rollback_for_the_example_rollout(tmp_path: Path) -> None:
    result = tidegate_plan(tmp_path, str(REPO / "examples/demo/rollout.yaml"), "--decision", "rollback")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "plan for checkout-web: rollback",
        "  checkout-flag            disable  (flag off: everyone gets the previous behaviour)",
        "  web                      rollback(to 2.3.9)",
        "  beta-banner              enable  (on: override)",
        "  ios-app                  pause  (paused; a human must finish the rollback)",
        IOS_PAGE,
    ]
    assert list(tmp_path.iterdir()) == []  # acting on nothing: no state, no sandbox file


def test_plan_cli_rollback_for_the_demo_rollout(tmp_path: Path) -> None:
    result = tidegate_plan(tmp_path, str(REPO / "controller/demo_rollout.yaml"), "--decision", "rollback")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "plan for checkout-demo: rollback",
        "  checkout-flag            disable  (flag off: everyone gets the previous behaviour)",
        "  backend                  rollback(to 2.3.9)",
        "  web                      rollback(to 2.3.9)",
        "  voucher-preview          rollback(to 2.3.9)",
        "  ios-app                  pause  (paused; a human must finish the rollback)",
        IOS_PAGE,
    ]
    assert list(tmp_path.iterdir()) == []


def test_plan_cli_step_down_goes_to_the_first_down_step(tmp_path: Path) -> None:
    result = tidegate_plan(tmp_path, str(REPO / "controller/demo_rollout.yaml"), "--decision", "step_down")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "plan for checkout-demo: step_down to 50%",
        "  checkout-flag            set_traffic(50%)",
        "  backend                  pause  (no traffic steps: paused instead)",
        "  web                      set_traffic(50%)",
        "  voucher-preview          nothing  (no traffic steps or pause: unchanged)",
        "  ios-app                  pause  (no traffic steps: paused instead)",
    ]


def test_plan_cli_step_down_with_the_mitigation_flag(tmp_path: Path) -> None:
    result = tidegate_plan(
        tmp_path, str(REPO / "examples/demo/rollout.yaml"), "--decision", "step_down", "--traffic", "10"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "plan for checkout-web: step_down to 10%",
        "  checkout-flag            set_traffic(10%)",
        "  web                      set_traffic(10%)",
        "  beta-banner              enable  (on: override)",
        "  ios-app                  pause  (no traffic steps: paused instead)",
    ]


def test_plan_cli_pause(tmp_path: Path) -> None:
    result = tidegate_plan(tmp_path, str(REPO / "controller/demo_rollout.yaml"), "--decision", "pause")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "plan for checkout-demo: pause",
        "  checkout-flag            nothing  (cannot pause: holds at its current traffic)",
        "  backend                  pause",
        "  web                      nothing  (cannot pause: holds at its current traffic)",
        "  voucher-preview          nothing  (cannot pause: holds at its current traffic)",
        "  ios-app                  pause",
    ]


@pytest.mark.parametrize("decision", ["explode", "ROLLBACK", ""])
def test_plan_cli_rejects_an_unknown_decision_with_exit_2(tmp_path: Path, decision: str) -> None:
    result = tidegate_plan(tmp_path, str(REPO / "examples/demo/rollout.yaml"), "--decision", decision)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--decision" in result.stderr
    assert "expected one of advance, step_down, rollback, pause, resume, promote" in result.stderr
    assert "Traceback" not in result.stderr
