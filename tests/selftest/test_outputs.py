"""What a run leaves for the tools operators already watch: the history row, the report's comparison with the
previous run, a Prometheus text file that Prometheus' own parser reads, and JUnit XML with every check."""
from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

import pytest
from prometheus_client.parser import text_string_to_metric_families

from comfycheck.history import History
from tests.selftest.helpers import run_pytest

pytestmark = pytest.mark.selftest

CHECKS = '''
import os
import pytest

def test_fast_enough(measure):
    measure("generation_s", float(os.environ["GENERATION_S"]), name="one generation")
    measure.info("device", "cpu")

def test_leak(measure):
    measure("vram_released_gb", float(os.environ["LEAK_GB"]), name="VRAM after /free")

def test_skipped():
    pytest.skip("no Forge in this profile")

def test_sometimes_fails():
    assert os.environ["BREAK"] != "1", "ComfyUI answered 502"
'''


def _run(tmp_path, n: int, *, generation_s: float, leak_gb: float = 0.0, broken: bool = False):
    report, prom, junit = tmp_path / f"report-{n}.html", tmp_path / f"comfycheck-{n}.prom", tmp_path / f"junit-{n}.xml"
    result = run_pytest(str(tmp_path / "test_outputs_checks.py"), f"--history={tmp_path / 'h.sqlite'}",
                        f"--html={report}", "--self-contained-html", f"--prometheus={prom}", f"--junitxml={junit}",
                        env={"GENERATION_S": str(generation_s), "LEAK_GB": str(leak_gb),
                             "BREAK": "1" if broken else "0"})
    return result, html.unescape(report.read_text()), prom.read_text(), ET.parse(junit)


def test_each_run_is_kept_compared_and_published(tmp_path):
    (tmp_path / "test_outputs_checks.py").write_text(CHECKS)
    for n in range(6):
        result, page, *_ = _run(tmp_path, n, generation_s=10.0 + 0.1 * n)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "compared with #5" in page and "no change in checks, targets, figures or versions" in page
    result, page, prom, junit = _run(tmp_path, 6, generation_s=16.0, leak_gb=0.9, broken=True)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out

    # the report's headline, and the terminal, say what changed since the previous run
    head = page[page.index("comfycheck-verdict"):page.index("comfycheck-targets")]
    assert "compared with #6" in head and "2 checks newly failing; 1 target newly missed" in head, head
    assert re.search(r"newly failing: \S*test_outputs_checks\.py::test_sometimes_fails", head), head
    assert "worse than usual: one generation (target 'generation_s'): 16.00 s against a median of 10.25 s over the " \
           "previous 6 runs: worse by 5.75 s (+56 %)" in head, head
    assert "comfycheck: compared with #6" in out and "comfycheck: run #7 (pytest " in out, out

    # the history holds the run: verdict, counts, each check and each figure
    with History(tmp_path / "h.sqlite") as h:
        run = h.runs()[-1]
        assert (run.id, run.verdict) == (7, "failed")
        assert run.outcomes == {"passed": 1, "failed": 2, "error": 0, "skipped": 1, "blocked": 0}
        checks = {nodeid.rsplit("::", 1)[1]: outcome for nodeid, (outcome, _) in h.checks(7).items()}
        assert checks == {"test_fast_enough": "passed", "test_leak": "failed", "test_skipped": "skipped",
                          "test_sometimes_fails": "failed"}
        assert [(m.name, m.verdict) for m in h.measurements(7)] == [
            ("one generation", "pass"), ("device", "info"), ("VRAM after /free", "FAIL")]
        assert run.versions["comfycheck"]

    # Prometheus: its own parser reads the file; one gauge per figure, whether each target was met, the counts
    families = {f.name: f for f in text_string_to_metric_families(prom)}
    samples = {(s.name, s.labels.get("measurement", s.labels.get("outcome", ""))): (s.value, s.labels)
               for f in families.values() for s in f.samples}
    value, labels = samples[("comfycheck_measurement_value", "one generation")]
    assert value == 16.0 and labels["target"] == "generation_s" and labels["profile"] and labels["unit"] == "s"
    assert samples[("comfycheck_target_met", "one generation")][0] == 1.0
    assert samples[("comfycheck_target_met", "VRAM after /free")][0] == 0.0
    assert samples[("comfycheck_target_threshold", "VRAM after /free")][0] == 0.5
    assert samples[("comfycheck_checks", "failed")][0] == 2 and samples[("comfycheck_checks", "skipped")][0] == 1
    assert samples[("comfycheck_run_success", "")][0] == 0.0
    assert samples[("comfycheck_run_timestamp_seconds", "")][0] > 1.7e9
    assert ("comfycheck_measurement_value", "device") not in samples, "a text figure is no gauge"

    # JUnit XML: every check, with its outcome
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    assert set(cases) == {"test_fast_enough", "test_leak", "test_skipped", "test_sometimes_fails"}
    assert cases["test_sometimes_fails"].find("failure") is not None
    assert cases["test_leak"].find("failure") is not None
    assert cases["test_skipped"].find("skipped") is not None
    assert not [e for e in cases["test_fast_enough"] if e.tag != "properties"], "a pass has no failure or skip"
    props = {p.get("name"): p.get("value") for p in cases["test_leak"].iter("property")}
    assert props == {"VRAM after /free": "0.90 GB (target < 0.5 GB, 'vram_released_gb': FAIL)"}


def test_an_unwritable_output_stops_the_run_before_it_starts(tmp_path):
    (tmp_path / "test_outputs_checks.py").write_text(CHECKS)
    result = run_pytest(str(tmp_path / "test_outputs_checks.py"), f"--prometheus={tmp_path}")
    assert result.returncode == 4 and f"--prometheus / [results] prometheus_file: {tmp_path} is a folder" in \
        result.stderr, result.stdout + result.stderr
    not_a_db = tmp_path / "history.sqlite"
    not_a_db.write_text("x" * 4096)
    result = run_pytest(str(tmp_path / "test_outputs_checks.py"), f"--history={not_a_db}")
    assert result.returncode == 4 and f"history {not_a_db}: file is not a database" in result.stderr, result.stderr
    assert not_a_db.read_text() == "x" * 4096


def test_a_run_the_history_could_not_keep_does_not_pass_quietly(tmp_path):
    """The report is still written; the exit status and the last line say the run is not in the history."""
    (tmp_path / "test_outputs_checks.py").write_text(CHECKS)
    (tmp_path / "conftest.py").write_text(
        "import sqlite3\nfrom comfycheck.history import store\n\n"
        "def _locked(self, *a, **kw):\n    raise sqlite3.OperationalError('database is locked')\n\n"
        "store.History.finish = _locked\n")
    history = tmp_path / "h.sqlite"
    result = run_pytest(str(tmp_path / "test_outputs_checks.py"), "-k", "fast_enough", f"--history={history}",
                        f"--html={tmp_path / 'report.html'}", env={"GENERATION_S": "1"},
                        in_subprocess=True)  # its conftest breaks the history for the whole process
    out = result.stdout + result.stderr
    assert result.returncode == 3, out
    assert f"comfycheck: run #1 could not be kept in {history}: database is locked" in out
    assert (tmp_path / "report.html").is_file() and (tmp_path / "measurements.json").is_file()
