"""The documented targets, in one place: every threshold a figure is judged against, with its direction.

A profile's [targets] table overrides a default; the targets marked `source` take their threshold from the
profile key they name (a requirement the checks also use, such as the upload size), and `rule` says how a
default is worked out where it depends on what is measured (a certificate's lifetime)."""
from __future__ import annotations

import operator
from dataclasses import dataclass

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    threshold: float
    unit: str
    op: str = "<"
    rule: str = ""  # how the default threshold is derived from what is measured, unless a profile sets one
    source: str = ""  # the profile key the threshold comes from (not set in [targets])
    news: float = 0.05  # the smallest change, as a share of the threshold, that the trend calls a regression
    decimals: int | None = None  # where its figures resolve otherwise than their unit (config.units.DECIMALS)

    def met_by(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def describe(self) -> str:
        return f"{self.op} {fmt(self.threshold)} {self.unit}".strip()

    def with_threshold(self, threshold: float, *, rule: str = "") -> Target:
        """This target at another threshold: a profile's override (no rule any more), or the rule worked out."""
        return Target(self.key, self.label, float(threshold), self.unit, self.op, rule, self.source, self.news,
                      self.decimals)


# The defaults of the deployment's documented targets; a profile's [targets] table overrides any of them.
DEFAULT_TARGETS: dict[str, Target] = {
    t.key: t
    for t in [
        # startup and restart are polled for (every 0.1 s by default), the silence is held to a tenth of a second
        Target("startup_s", "ComfyUI startup", 30, "s", decimals=1),
        # a half-done update: ComfyUI's own pip packages (frontend, templates, docs) below its requirements.txt
        Target("comfy_packages_below_required", "ComfyUI's own packages below the version it requires", 0,
               "packages", "<="),
        Target("restart_s", "ComfyUI restart after crash", 30, "s", decimals=1),
        Target("vram_idle_pct", "VRAM idle", 10, "%"),
        Target("vram_generation_pct", "VRAM during a 512x512 generation", 80, "%"),
        Target("vram_generation_gb", "VRAM during a 512x512 generation", 18, "GB"),
        Target("generation_s", "one 512x512 generation", 30, "s"),
        Target("gpu_temp_idle_c", "GPU temperature idle", 40, "°C"),
        Target("gpu_temp_load_c", "GPU temperature under load", 85, "°C"),
        # a p95 of a few dozen requests moves by milliseconds with the host's scheduling: news from a quarter of
        # the target on (5 ms of 20 ms); the target itself still judges every run
        Target("latency_local_ms", "API latency local (p95)", 20, "ms", news=0.25),
        Target("latency_proxy_ms", "API latency through the proxy (p95)", 100, "ms", news=0.25),
        Target("consecutive_generations", "consecutive generations that succeed", 10, "runs", ">="),
        Target("generation_time_cv_pct", "generation time stability (coefficient of variation)", 20, "%"),
        Target("vram_released_gb", "VRAM left above the idle baseline after /free", 0.5, "GB"),
        Target("availability_pct", "availability", 99.9, "%", ">=", decimals=3),  # a day of 1 s rounds: 0.001 %
        Target("hsts_max_age_s", "HSTS max-age", 15768000, "s", ">=", decimals=0),  # a header's whole seconds
        Target("cert_days_left", "days left on the certificate that expires first", 30, "days", ">",
               rule="a third of the certificate's lifetime"),
        Target("websocket_idle_s", "silence the WebSocket through the proxy survives", 90, "s", ">=",
               source="public.websocket_idle_s", decimals=1),
        Target("backend_upload_limit_mib", "ComfyUI's own upload limit (/features max_upload_size)", 100, "MiB",
               ">=", source="comfyui.upload_limit_mib"),
        Target("proxy_upload_limit_mib", "proxy upload limit", 100, "MiB", ">=", source="public.upload_limit_mib"),
        # the soak (comfycheck.soak): what hours of service do to the process and its users
        Target("ram_growth_mb_per_h", "ComfyUI process RAM (RSS) growth per hour", 100, "MB/h"),
        Target("vram_growth_mb_per_h", "VRAM growth per hour", 100, "MB/h"),
        Target("websocket_drops", "WebSocket drops before the required silence (public.websocket_idle_s)", 0,
               "drops", "<="),
        Target("canary_success_pct", "canary generations that succeed", 100, "%", ">="),
        # a class run (comfycheck.classrun): many students on the one GPU, each prompt as its student lives it
        Target("class_goodput_pct", "prompts whose time to result is within [class] result_within_s", 95, "%",
               ">="),
        Target("class_failures", "class prompts that failed", 0, "prompts", "<="),
        Target("class_lost_prompts", "class prompts lost (submitted, never finished)", 0, "prompts", "<="),
        Target("class_ws_drops", "student WebSockets dropped during the run", 0, "drops", "<="),
        Target("class_order_inversions", "prompts that ran ahead of one submitted earlier (FIFO)", 0, "prompts",
               "<="),
        Target("class_backends_failing", "fleet backends that failed, stalled or stopped answering during the run",
               0, "backends", "<="),
        # a shared deployment: what one user can do to everyone through the public address
        Target("exposed_operations", "operations on everyone a user reaches that the profile requires refused", 0,
               "operations", "<="),
        Target("prompt_burst_accepted", "POST /prompt one user gets through in a burst of twice the rate limit", 0,
               "requests", "<=", rule="public.rate_limit_per_min, with 10 % and one request of slack"),
        Target("canary_drift_s", "canary slowdown, last quarter against the first (median server time)", 3, "s"),
    ]
}


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile of the samples (p95 of latency samples, say)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def paired_overhead(base: list[float], extra: list[float]) -> tuple[float, float]:
    """Median and p95 of what `extra` adds to `base`, sample by sample (interleaved pairs).

    Subtracting two p95s compares the tails of two noisy samples and can come out negative; the paired
    differences measure the overhead itself."""
    diffs = [e - b for b, e in zip(base, extra, strict=True)]
    ordered = sorted(diffs)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return median, percentile(diffs, 95)


def fmt(v: float | str | None) -> str:
    """A threshold or setting as the profile wrote it (20, 0.5, 99.9); measured figures: config.units.shown."""
    if isinstance(v, float) and v.is_integer() and abs(v) >= 100:
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)
