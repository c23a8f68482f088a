"""A class run judged from its records alone, on made-up records: what each student waited, lost prompts,
first come first served, and the capacity line. No stack needed."""
from __future__ import annotations

import pytest

from comfycheck.classrun import records as raw
from comfycheck.classrun.arrivals import arrival_times
from comfycheck.classrun.judge import Capacity, jain_index, judge, order_jumps
from comfycheck.classrun.records import PromptRecord
from comfycheck.config.profile import ProfileError, load_profile
from comfycheck.config.settings import ClassSettings

pytestmark = pytest.mark.selftest
T0 = 1_700_000_000_000  # ComfyUI's ms clock
RAN = ("one model-free run of cpu_load_modelfree.json (2048x2048)", False)


def served(n: int, service_s: float = 2.0, order: list[int] | None = None) -> list[PromptRecord]:
    """n prompts all queued at T0 (a burst), run one at a time in `order` (FIFO by default)."""
    order = order or list(range(n))
    recs = [PromptRecord(f"student-{i + 1:02d}", 1, "https://x", f"c{i}", "success", prompt_id=f"p{i}", number=i,
                         submitted_at=T0 / 1000, accept_ms=5.0, create_ms=T0 + i) for i in range(n)]
    clock = T0 + n
    for i in order:
        r = recs[i]
        r.start_ms, r.end_ms = clock, clock + int(service_s * 1000)
        clock = r.end_ms
        r.start_seen_at, r.end_seen_at = r.start_ms / 1000 + 0.002, r.end_ms / 1000 + 0.002
        r.view_ms, r.downloaded_at, r.output_bytes = 3.0, r.end_ms / 1000 + 0.01, 1000
    return recs


SETTINGS = ClassSettings(students=4, prompts_each=1, result_within_s=5.0)


def figures(recs, requested=None):
    rows, capacity = judge(recs, load_profile(None).targets, SETTINGS, requested=requested or len(recs), ran=RAN)
    return {m.name: m for m in rows}, capacity


def test_a_fifo_burst_is_judged_by_what_each_student_waits():
    rows, capacity = figures(served(4))
    goodput = rows["prompts whose time to result is within [class] result_within_s"]
    assert (goodput.value, goodput.verdict) == (50.0, "FAIL")  # 2 s, 4 s within 5 s; 6 s, 8 s not
    assert rows["prompts that ran ahead of one submitted earlier (FIFO)"].value == 0
    assert rows["queue wait max"].value == pytest.approx(6.0, abs=0.01)
    assert rows["GPU busy share"].value == pytest.approx(100.0, abs=0.5)
    assert rows["throughput"].value == pytest.approx(30.0, abs=0.2)
    assert capacity is not None and capacity.largest_class == 2


def test_a_lifo_server_is_named_unfair_with_both_ids():
    jumps = order_jumps(served(3, order=[2, 1, 0]))
    assert [j.describe() for j in jumps][0].startswith(
        "p1 (student-02 #1, queue number 1) ran before p0 (student-01 #1, number 0), submitted earlier")
    rows, _ = figures(served(3, order=[2, 1, 0]))
    m = rows["prompts that ran ahead of one submitted earlier (FIFO)"]
    assert (m.value, m.verdict) == (2, "FAIL") and "not first come, first served" in m.fix


def test_lost_and_never_submitted_prompts_are_counted_and_named():
    recs = served(2) + [PromptRecord("student-03", 1, "https://x", "c3", raw.LOST, prompt_id="p3",
                                     error="prompt p3 did not finish within 60 s")]
    rows, _ = figures(recs, requested=4)
    lost = rows["class prompts lost (submitted, never finished)"]
    assert lost.value == 2 and "student-03 #1 p3: prompt p3 did not finish" in lost.fix
    assert "1 never submitted before the run stopped" in lost.fix


def test_the_capacity_line_reads_as_the_operator_plans():
    line = Capacity(23.4, 25.0, 300.0, 1, 30).describe()
    assert line == ("at 23.4 s per image (p95 25.0 s), a class of 12 is served within 5.0 min (one prompt each); "
                    "30 students wait up to 11.7 min")


def test_jains_index():
    assert jain_index([3.0, 3.0, 3.0]) == 1.0
    assert jain_index([9.0, 0.0, 0.0]) == pytest.approx(1 / 3)
    assert jain_index([]) is None


def test_records_on_disk_survive_a_cut_line(tmp_path):
    path = tmp_path / raw.PROMPTS_JSONL
    for r in served(2):
        raw.append(path, r)
    path.write_text(path.read_text() + '{"student": "student-09", "se')
    back = raw.read(path)
    assert [r.prompt_id for r in back] == ["p0", "p1"] and back[1].queue_wait_s == pytest.approx(2.001, abs=1e-6)


def test_the_class_table_of_a_profile(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('name = "x"\n[comfyui]\nurl = "http://127.0.0.1:1"\n[class]\nstudents = 30\nprompts_each = 1\n')
    assert load_profile(good).classroom.students == 30
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[comfyui]\nurl = "http://127.0.0.1:1"\n[class]\nstudents = 0\nshape = "lifo"\n')
    with pytest.raises(ProfileError) as err:
        load_profile(bad)
    assert "class.students: expected a whole number above 0, got 0" in str(err.value)
    assert "class.shape" in str(err.value)


def test_a_rates_arrivals_are_seeded_poisson_and_bounded_in_prompts():
    settings = ClassSettings(shape="rate", rate_per_min=30, duration_s=600, seed=7)
    times = arrival_times(settings)
    assert len(times) == settings.prompts == 300 and times == arrival_times(settings) and times[0] == 0.0
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert sum(gaps) / len(gaps) == pytest.approx(2.0, rel=0.15)  # mean gap 60 / 30 s
    assert times != arrival_times(ClassSettings(shape="rate", rate_per_min=30, duration_s=600, seed=8))


def test_the_capacity_line_of_a_rate():
    line = Capacity(4.0, 4.5, 300.0, 1, 10, rate_per_min=6.0).describe()
    assert line == ("at 4.0 s per image (p95 4.5 s) the GPU takes 15.0 prompts a minute; arrivals at 6 a minute keep "
                    "it 40 % busy; a burst class of 75 is served within 5.0 min (one prompt each)")
    assert "the queue grows without end" in Capacity(4.0, 4.5, 300.0, 1, 10, rate_per_min=20.0).describe()


def test_the_load_run_judges_execution_not_the_wait_in_the_queue():
    """Five users at once (-u 5): each generation took 6 s on the GPU, the later ones waited behind the others."""
    from comfycheck.load.judge import AfterFree, IdleBaseline
    from comfycheck.load.judge import judge as judge_load
    from comfycheck.load.samples import Generation

    gens = [Generation(n, True, 6.0 * n + 0.05, 6.0 * n, f"p{n}", exec_s=6.0 + 0.01 * n) for n in range(1, 6)]
    rows = judge_load(load_profile(None).targets, requested=5, generations=gens,
                      idle=IdleBaseline(1.0, 4.0, None, 24.0, "gpu"), peak=None, max_temp=None,
                      after=AfterFree(1.0, 0.0, 0.1), on_gpu=True)
    by_key = {m.key: m for m in rows if m.key}
    assert by_key["generation_s"].value == pytest.approx(6.05) and by_key["generation_s"].verdict == "pass"
    cv = by_key["generation_time_cv_pct"].number
    assert cv is not None and cv < 1.0


def test_prompts_ahead_at_submit_come_from_comfyuis_own_numbers_and_timestamps():
    burst = served(4)  # all queued before the first ran: 0, 1, 2, 3 ahead
    assert [raw.queue_ahead(burst)[(r.student, 1)] for r in burst] == [0, 1, 2, 3]
    late = served(1)[0]
    assert burst[1].end_ms is not None
    late.student, late.number, late.create_ms = "student-09", 9, burst[1].end_ms + 1  # after two had ended
    assert raw.queue_ahead([*burst, late])[("student-09", 1)] == 2
    assert figures(burst)[0]["most prompts ahead at submit"].value == 3
