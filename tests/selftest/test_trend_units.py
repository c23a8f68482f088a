"""The regression rule, the comparison with the previous run and the trend page, on histories built in place."""
from __future__ import annotations

import html

import pytest

from comfycheck.config.targets import DEFAULT_TARGETS
from comfycheck.history import History
from comfycheck.history.compare import compare
from comfycheck.history.regression import judge
from comfycheck.history.trend import analyse, render
from comfycheck.judge.measurements import Measurement

pytestmark = pytest.mark.selftest

GEN = DEFAULT_TARGETS["generation_s"]  # < 30 s
LEAK = DEFAULT_TARGETS["vram_released_gb"]  # < 0.5 GB
STREAK = DEFAULT_TARGETS["consecutive_generations"]  # >= 10


def test_a_value_worse_than_the_median_by_more_than_the_tolerance_is_flagged():
    usual = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8]
    assert judge(usual, 12.4, op="<", threshold=30) is None, "24 % slower: within the 25 % tolerance"
    r = judge(usual, 13.0, op="<", threshold=30)
    assert r and r.baseline == 10.0 and r.worse_by == 3.0 and "+30 %" in r.describe("s")
    assert judge(usual, 5.0, op="<", threshold=30) is None, "faster is never a regression"
    assert judge(usual[:4], 50.0, op="<", threshold=30) is None, "fewer than 5 previous runs: no judgement"
    assert judge([10.0] * 10, 7.0, op=">=", threshold=10), "a '>=' target regresses downwards"


def test_jitter_within_its_usual_spread_and_changes_too_small_for_the_target_are_not_news():
    jittery = [2.0, 3.1, 1.6, 2.9, 1.8, 3.3, 2.2, 1.5, 3.0, 2.4]  # p95 latency in ms, target < 20 ms
    assert judge(jittery, 3.6, op="<", threshold=20) is None, "within 3 robust standard deviations"
    assert judge(jittery, 9.0, op="<", threshold=20), "far outside its spread"
    assert judge([0.0] * 10, 0.02, op="<", threshold=0.5) is None, "below 5 % of the threshold"
    assert judge([0.0] * 10, 0.03, op="<", threshold=0.5), "a leak of 30 MB on a 0.5 GB target is news"
    steady = [0.55, 0.52, 0.59, 0.51, 0.56, 0.55, 0.50, 0.57]  # a p95 of 30 requests on loopback, in ms
    latency = DEFAULT_TARGETS["latency_local_ms"]
    assert judge(steady, 3.8, op="<", threshold=20, news=latency.news) is None, "one scheduling hiccup"
    assert judge(steady, 6.0, op="<", threshold=20, news=latency.news), "beyond a quarter of the target"


def test_a_lasting_change_is_flagged_until_it_fills_half_the_window():
    values, flagged = [10.0] * 20, []
    for _ in range(20):
        flagged.append(bool(judge(values, 20.0, op="<", threshold=30, window=20)))
        values.append(20.0)
    assert flagged == [True] * 10 + [False] * 10


def _run(h: History, n: int, *, gen: float = 10.0, leak: float = 0.0, comfyui: str = "0.3.59",
         failed: tuple[str, ...] = ()) -> int:
    ms = [Measurement("one generation", gen, "s", GEN), Measurement("VRAM after /free", leak, "GB", LEAK),
          Measurement("streak", None, "runs", STREAK, not_assessed="not assessed: 3 requested"),
          Measurement("device", "cpu")]
    checks = [("test_a", "failed" if "test_a" in failed else "passed", ""), ("test_b", "passed", "")]
    return h.append("prod", "pytest", started=f"2026-11-{n:02d}T03:00:00+00:00", verdict="failed" if failed
                    else "passed", outcomes={}, versions={"comfyui": comfyui, "gpu": "H100"}, measurements=ms,
                    checks=checks)


def test_the_trend_flags_exactly_the_faulty_runs_and_draws_the_thresholds(tmp_path):
    with History(tmp_path / "h.sqlite") as h:
        ids = [_run(h, n, gen=10.0 + 0.1 * (n % 3) + (8 if 20 <= n <= 25 else 0), leak=1.2 if n >= 26 else 0.0,
                    comfyui="0.3.60" if n >= 20 else "0.3.59") for n in range(1, 31)]
        trend = analyse(h, "prod")
        page = render(trend)
    by_n = {ids.index(r) + 1: targets for r, targets in trend.flagged_runs().items()}
    assert by_n == {**{n: ["generation_s"] for n in range(20, 26)}, **{n: ["vram_released_gb"] for n in range(26, 31)}}
    assert [(run.id, diff) for run, diff in trend.versions] == [(ids[19], ["ComfyUI 0.3.59 -> 0.3.60"])]
    assert page.count('class="threshold"') == 2 and "target &lt; 30 s" in page and "target &lt; 0.5 GB" in page
    assert page.count('class="point regression"') == 11 and page.count('class="run"') == 30
    assert ('streak (consecutive generations that succeed) <span class="muted">consecutive_generations</span></h2>'
            '<p class="muted">not assessed in these runs') in page


def test_the_comparison_names_what_changed_since_the_previous_run(tmp_path):
    with History(tmp_path / "h.sqlite") as h:
        first = compare(h, profile="prod", kind="pytest", run_id=None, measurements=[], checks={}, versions={})
        assert first.previous is None and "nothing to compare with" in first.summary()
        for n in range(1, 8):
            _run(h, n)
        now = [Measurement("one generation", 31.0, "s", GEN), Measurement("VRAM after /free", 0.0, "GB", LEAK)]
        c = compare(h, profile="prod", kind="pytest", run_id=None, measurements=now,
                    checks={"test_a": "failed", "test_b": "passed"}, versions={"comfyui": "0.3.60", "gpu": "H100"})
    assert c.newly_failing == ["test_a"] and c.fixed == []
    assert c.newly_missed and "one generation" in c.newly_missed[0]
    assert len(c.regressions) == 1 and "against a median of 10.00 s over the previous 7 runs" in c.regressions[0]
    assert c.versions == ["ComfyUI 0.3.59 -> 0.3.60"]
    assert c.summary().startswith("compared with #7 2026-11-07 03:00 (passed): 1 check newly failing; "
                                "1 target newly missed; 1 figure worse than usual; versions changed")
    assert "versions changed: ComfyUI 0.3.59 -> 0.3.60" in html.unescape(c.html())
