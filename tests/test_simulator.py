"""The release simulator: seeded, pure, and as messy as promised (docs/policies.md study)."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from statistics import fmean

from controller.simulator import (
    LATENCY_BUCKETS,
    Regression,
    ReleaseSpec,
    demo_spec,
    healthy_spec,
    histogram_quantile,
    regressed_spec,
    regression_incident_times,
    simulate,
)

SCRAPE = 30.0


def _values(spec: ReleaseSpec, column: str) -> list[float]:
    return simulate(spec).data.columns[column][1]


def test_same_seed_gives_identical_data_and_events() -> None:
    spec = healthy_spec(11)
    first, second = simulate(spec), simulate(spec)
    assert first.data.columns == second.data.columns
    assert first.data.events == second.data.events
    assert first.latent == second.latent
    assert simulate(healthy_spec(12)).data.columns != first.data.columns


def test_specs_are_seeded_functions_of_their_seed() -> None:
    assert healthy_spec(5) == healthy_spec(5)
    assert regressed_spec(5, "latency", 30.0, "low") == regressed_spec(5, "latency", 30.0, "low")
    assert demo_spec() == demo_spec()


def test_a_regression_leaves_the_noise_before_its_onset_untouched() -> None:
    base = replace(healthy_spec(3), gap_chance=0.0, long_gap_chance=0.0)
    onset = 1800.0
    regressed = replace(base, regressions=(Regression("error_rate", onset=onset, size=0.3),))
    healthy_data, regressed_data = simulate(base).data, simulate(regressed).data
    times, healthy_errors = healthy_data.columns["error_rate:num"]
    _, regressed_errors = regressed_data.columns["error_rate:num"]
    before = [i for i, t in enumerate(times) if t < base.start + onset]
    assert [healthy_errors[i] for i in before] == [regressed_errors[i] for i in before]
    assert healthy_data.columns["error_rate:den"] == regressed_data.columns["error_rate:den"]


def test_traffic_spans_a_few_requests_to_thousands_per_scrape() -> None:
    means = []
    for seed in range(60):
        requests = _values(replace(healthy_spec(seed), duration=1800.0, history=0.0), "error_rate:den")
        means.append(fmean(requests))
    assert min(means) < 5  # a few requests per 30 s scrape
    assert max(means) > 1000  # thousands
    low = _values(regressed_spec(1, "error_rate", 0.15, "low"), "error_rate:den")
    assert 1 <= fmean(low) <= 10
    high = _values(regressed_spec(1, "error_rate", 0.15, "high"), "error_rate:den")
    assert fmean(high) > 500


def test_diurnal_cycle_moves_traffic_between_trough_and_peak() -> None:
    spec = ReleaseSpec(seed=4, peak_requests=1000.0, trough_ratio=0.1, history=0.0, duration=86400.0)
    expected = simulate(spec).latent["requests"][1]
    assert max(expected) > 700
    assert min(expected) < 200


def test_scrape_gaps_drop_whole_scrapes_when_enabled() -> None:
    spec = replace(healthy_spec(8), gap_chance=0.05, long_gap_chance=0.0)
    scenario = simulate(spec)
    times = scenario.data.columns["error_rate:den"][0]
    steps = round((spec.history + spec.duration) / spec.step) + 1
    assert len(times) < steps * 0.9
    assert max(b - a for a, b in itertools.pairwise(times)) > SCRAPE
    quiet = simulate(replace(spec, gap_chance=0.0))
    assert len(quiet.data.columns["error_rate:den"][0]) == steps


def test_one_tick_spikes_appear_when_enabled_and_not_otherwise() -> None:
    def spikes(chance: float) -> int:
        values = _values(replace(healthy_spec(9), spike_chance=chance, gap_chance=0.0), "lcp_p75")
        return sum(1 for v in values if v > 4.0)  # lcp_p75 sits around 2 s

    assert spikes(0.0) == 0
    assert spikes(0.05) > 5


def test_incident_deliveries_are_duplicated_with_the_same_id() -> None:
    spec = replace(healthy_spec(2), background_incidents_per_hour=2.0, duplicate_delivery=0.5)
    events = simulate(spec).data.events
    ids = [e.id for e in events]
    assert len(ids) > len(set(ids))  # at-least-once delivery
    severities = {e.fields["severity"] for e in events}
    assert severities == {"high", "low"}
    none = simulate(replace(spec, duplicate_delivery=0.0)).data.events
    assert len({e.id for e in none}) == len(none)


def test_background_incident_rate_is_roughly_the_configured_rate() -> None:
    hours, high = 0.0, 0
    for seed in range(40):
        spec = replace(healthy_spec(seed), duplicate_delivery=0.0)
        high += sum(1 for e in simulate(spec).data.events if e.fields["severity"] == "high")
        hours += (spec.history + spec.duration) / 3600
    assert 0.5 * spec.background_incidents_per_hour < high / hours < 2 * spec.background_incidents_per_hour


def test_error_regression_shows_up_in_the_latent_and_observed_ratio_after_onset() -> None:
    spec = replace(regressed_spec(21, "error_rate", 0.15, "high"), blip_chance=0.0)
    scenario = simulate(spec)
    onset = scenario.onset("error_rate")
    assert onset is not None
    times, latent = scenario.latent["error_ratio"]
    assert all(v == 0.15 for t, v in zip(times, latent, strict=True) if t >= onset)
    assert all(v < 0.05 for t, v in zip(times, latent, strict=True) if t < onset)
    (stamps, errors), (_, requests) = (scenario.data.columns[c] for c in ("error_rate:num", "error_rate:den"))
    after = [(e, r) for t, e, r in zip(stamps, errors, requests, strict=True) if t >= onset]
    assert 0.12 < sum(e for e, _ in after) / sum(r for _, r in after) < 0.18


def test_latency_regression_moves_the_true_and_the_observed_p95() -> None:
    scenario = simulate(regressed_spec(22, "latency", 30.0, "mid"))
    onset = scenario.onset("latency")
    assert onset is not None
    times, true_p95 = scenario.latent["latency_p95"]
    assert {v for t, v in zip(times, true_p95, strict=True) if t >= onset} == {30.0}
    stamps, observed = scenario.data.columns["latency_p95"]
    settled = [v for t, v in zip(stamps, observed, strict=True) if t >= onset + 600]
    assert sorted(settled)[len(settled) // 2] > 20  # the median observed p95 is over the bound


def test_conversion_drop_and_incident_burst_after_onset() -> None:
    scenario = simulate(regressed_spec(23, "conversion", 0.3, "high"))
    onset = scenario.onset("conversion")
    assert onset is not None
    times, conversion = scenario.latent["conversion"]
    before = fmean(v for t, v in zip(times, conversion, strict=True) if t < onset)
    after = fmean(v for t, v in zip(times, conversion, strict=True) if t >= onset)
    assert after < before * 0.75
    burst = simulate(regressed_spec(24, "incidents", 4.0, "mid"))
    arrivals = regression_incident_times(burst)
    start = burst.onset("incidents")
    assert start is not None
    assert len(arrivals) == 4
    assert arrivals[0] == start
    assert arrivals[-1] - arrivals[0] <= 3600


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    counts = [0] * (len(LATENCY_BUCKETS) + 1)
    index = LATENCY_BUCKETS.index(20.0)
    counts[index] = 50  # all in (15, 20]
    counts[index + 1] = 50  # all in (20, 25]
    assert histogram_quantile(0.5, counts) == 20.0
    assert math.isclose(histogram_quantile(0.95, counts) or 0.0, 24.5)
    assert histogram_quantile(0.95, [0] * len(counts)) is None
    counts_inf = [0] * len(counts)
    counts_inf[-1] = 3
    assert histogram_quantile(0.95, counts_inf) == LATENCY_BUCKETS[-1]


def test_demo_spec_still_tells_its_story() -> None:
    scenario = simulate(demo_spec())
    assert scenario.onset("latency") == scenario.start + 40 * 60
    assert scenario.onset("error_rate") == scenario.start + 70 * 60
    assert scenario.end == scenario.start + 100 * 60
