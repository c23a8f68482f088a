"""A run's figures as a Prometheus text file, for node_exporter's textfile collector (windows_exporter's on
Windows): written whole, atomically (prometheus-client's write_to_textfile), on every run that asks for it.

Metrics (labels: profile, kind; per figure also target, measurement, unit):
  comfycheck_measurement_value         each numeric figure of the run (target "" for an informative one)
  comfycheck_target_threshold          the threshold it was judged against
  comfycheck_target_met                1 met, 0 missed (figures not assessed are left out)
  comfycheck_checks                    checks by outcome (passed, failed, error, skipped, blocked)
  comfycheck_run_success               1 when the run passed, else 0
  comfycheck_run_timestamp_seconds     when the run finished (Unix time)
  comfycheck_run_duration_seconds      how long it took
"""
from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from ..judge.measurements import FAIL, PASS, Measurement

FIGURE_LABELS = ["profile", "kind", "target", "measurement", "unit"]
RUN_LABELS = ["profile", "kind"]


def write(path: Path, *, profile: str, kind: str, measurements: list[Measurement], counts: dict[str, int],
          success: bool, finished_ts: float, duration_s: float) -> None:
    registry = CollectorRegistry()
    value = Gauge("comfycheck_measurement_value", "A figure the run measured, in its unit", FIGURE_LABELS,
                  registry=registry)
    threshold = Gauge("comfycheck_target_threshold", "The threshold the figure was judged against", FIGURE_LABELS,
                      registry=registry)
    met = Gauge("comfycheck_target_met", "1 when the figure met its target, 0 when it missed it", FIGURE_LABELS,
                registry=registry)
    for m in measurements:
        if m.number is None:
            continue
        labels = dict(profile=profile, kind=kind, target=m.key or "", measurement=m.name, unit=m.unit)
        value.labels(**labels).set(m.number)
        if m.target is not None:
            threshold.labels(**labels).set(m.target.threshold)
        if m.verdict in (PASS, FAIL):
            met.labels(**labels).set(1 if m.verdict == PASS else 0)
    checks = Gauge("comfycheck_checks", "Checks of the run by outcome", RUN_LABELS + ["outcome"], registry=registry)
    for outcome, n in counts.items():
        checks.labels(profile=profile, kind=kind, outcome=outcome).set(n)
    run = dict(profile=profile, kind=kind)
    Gauge("comfycheck_run_success", "1 when the run passed, else 0", RUN_LABELS, registry=registry) \
        .labels(**run).set(1 if success else 0)
    Gauge("comfycheck_run_timestamp_seconds", "When the run finished (Unix time)", RUN_LABELS, registry=registry) \
        .labels(**run).set(finished_ts)
    Gauge("comfycheck_run_duration_seconds", "How long the run took", RUN_LABELS, registry=registry) \
        .labels(**run).set(duration_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
