"""The HTML report's own parts: the headline verdict, the targets table, a failure's one-line message; and the
secrets scrubbed from every test report before anything writes it."""
from __future__ import annotations

import html
from dataclasses import dataclass

from ..judge.measurements import FAIL, PASS, Measurement, missed

RED, GREEN, GREY = "#b00020", "#2a7d2a", "#555"


@dataclass
class Outcome:
    nodeid: str
    outcome: str  # "passed", "failed", "error" (setup/teardown failed) or "skipped"
    message: str = ""


def one_line(report) -> str:
    """A failed or skipped report's message, as a person reads it: the assertion or pytest.fail text."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, "Skipped: why")
        text = str(longrepr[2])
    else:
        crash = getattr(longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(longrepr or "")
    for prefix in ("Failed: ", "Skipped: ", "AssertionError: "):
        text = text.removeprefix(prefix)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return first if len(first) <= 400 else first[:397] + "..."


def record(outcomes: dict[str, Outcome], report) -> None:
    """Fold one phase's report into the test's outcome (a failed setup or teardown is an error)."""
    if report.when == "call":
        outcome = "failed" if report.failed else "skipped" if report.skipped else "passed"
    elif report.failed:
        outcome = "error"
    elif report.skipped:
        outcome = "skipped"
    else:
        return
    if report.nodeid in outcomes and outcomes[report.nodeid].outcome in ("failed", "error"):
        return  # a teardown after a failure changes nothing
    outcomes[report.nodeid] = Outcome(report.nodeid, outcome, one_line(report) if outcome != "passed" else "")


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    """passed, failed, error, skipped, and how many of the skipped were blocked by a failed foundation."""
    count = {k: sum(o.outcome == k for o in outcomes) for k in ("passed", "failed", "error", "skipped")}
    count["blocked"] = sum(o.outcome == "skipped" and o.message.startswith("blocked: ") for o in outcomes)
    return count


def run_verdict(outcomes: list[Outcome], exitstatus: int = 0) -> str:
    """The run in a word, as the history keeps it."""
    if exitstatus == 2:
        return "interrupted"
    if exitstatus in (3, 4):
        return "internal error" if exitstatus == 3 else "usage error"
    count = counts(outcomes)
    if count["failed"] or count["error"]:
        return "failed"
    return "passed" if count["passed"] else "nothing checked"


def headline(outcomes: list[Outcome], measurements: list[Measurement], duration_s: float | None = None,
             comparison: str = "") -> str:
    """The run's verdict first: a failed run can never look green, even where its failure recorded no figure.

    It also replaces pytest-html's "N tests took" line, whose N leaves out skipped and erroring tests.
    `comparison` is the comparison with the previous run (HTML), shown under the verdict."""
    count = counts(outcomes)
    blocked = count["blocked"]
    failed_targets = missed(measurements)
    judged = [m for m in measurements if m.verdict in (PASS, FAIL)]
    bad = [o for o in outcomes if o.outcome in ("failed", "error")]
    if bad:
        title, colour = f"FAILED: {len(bad)} of {len(outcomes)} checks did not pass", RED
        if blocked:
            title += f"; {blocked} more blocked by {'it' if len(bad) == 1 else 'them'}"
    elif count["passed"]:
        title, colour = f"PASSED: {count['passed']} checks passed", GREEN
    else:
        title, colour = "NOTHING CHECKED: every check was skipped", GREY
    took = f" in {duration_s:.1f} s" if duration_s is not None else ""
    parts = [f"{len(outcomes)} checks{took}", f"{count['passed']} passed", f"{count['failed']} failed",
             f"{count['error']} errors", f"{count['skipped']} skipped" + (f" ({blocked} blocked)" if blocked else ""),
             f"targets missed: {len(failed_targets)} of {len(judged)}"]
    items = "".join(f"<li><b>{html.escape(o.nodeid)}</b> ({o.outcome}): {html.escape(o.message)}</li>" for o in bad)
    return ('<style>.run-count{display:none}</style>'
            f'<div class="comfycheck-verdict" style="border:3px solid {colour};padding:8px;margin:8px 0">'
            f'<h2 style="color:{colour};margin:0">{html.escape(title)}</h2><p>{" · ".join(parts)}</p>'
            f'{f"<ul>{items}</ul>" if items else ""}{comparison}</div>')


def failure_banner(message: str) -> str:
    return f'<p class="comfycheck-failure" style="color:{RED};font-weight:bold">{html.escape(message)}</p>'


def _rows(measurements: list[Measurement]) -> str:
    rows = []
    for m in measurements:
        style = {"pass": f"color:{GREEN}", "FAIL": f"color:{RED};font-weight:bold"}.get(m.verdict, f"color:{GREY}")
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                m.name, m.shown, m.unit,
                f"{m.target.describe()} ({m.target.label})" if m.target else "")) +
            f'<td style="{style}">{m.verdict}</td><td>{html.escape(m.note)}</td><td>{html.escape(m.test)}</td></tr>'
        )
    return "".join(rows)


def targets_table(measurements: list[Measurement]) -> str:
    """Every Measurement, wherever it was taken (a check, the load run): the one way figures are shown."""
    head = "".join(f"<th>{h}</th>" for h in ("measurement", "value", "unit", "target", "verdict", "what", "test"))
    return (f'<h2>Targets</h2><table class="comfycheck-targets" border="1" cellpadding="4" '
            f'style="border-collapse:collapse"><tr>{head}</tr>{_rows(measurements)}</table>')


def redact(report, secrets: list[str]) -> None:
    """Tokens never reach a report: scrub them from the failure text and captured output."""
    def scrub(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text
    if report.longrepr is not None and any(s in str(report.longrepr) for s in secrets):
        report.longrepr = scrub(str(report.longrepr))
    report.sections = [(title, scrub(content)) for title, content in report.sections]


def run_page(title: str, verdict: str, *, lead: str, measurements: list[Measurement], notes: list[str],
             pictures: str = "", sections: str = "", facts: list[tuple[str, str]] | None = None) -> str:
    """The one page of every long run (load, class, soak), self-contained: the verdict and each target missed, the
    paragraph saying what ran, its pictures, the Targets table, the run's own sections, its facts (the versions it
    saw among them) and its notes."""
    colour = RED if verdict == FAIL else GREEN
    misses = "".join(f"<li>{html.escape(m.failure_message())}</li>" for m in measurements if m.verdict == FAIL)
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts or [])
    items = "".join(f"<li>{html.escape(str(n))}</li>" for n in notes)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>comfycheck {html.escape(title.lower())}: \
{html.escape(verdict)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1060px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}} h3{{margin:1.2em 0 .2em}}
.legend{{margin:.2em 0;font-size:90%;color:#444}} .verdict{{border-left:6px solid {colour};padding:.4em .8em}}</style>
</head><body>
<h1>{html.escape(title)}: <span style="color:{colour}">{html.escape(verdict)}</span></h1>
<div class="verdict">{lead}{f"<ul>{misses}</ul>" if misses else ""}</div>
{pictures}
{targets_table(measurements)}
{sections}
{f"<h2>The run</h2><table>{rows}</table>" if rows else ""}
{f"<h2>Notes</h2><ul>{items}</ul>" if items else ""}
</body></html>"""


def images(names: list[str]) -> str:
    """Pictures written beside the page, by file name."""
    return "<br>".join(f'<img src="{html.escape(n)}">' for n in names)


def run_facts(profile: str, started: str, finished: str, versions: dict) -> list[tuple[str, str]]:
    """The facts every long run's page gives: the profile, when it ran, and the versions it saw."""
    return [("profile", profile), ("started", started), ("finished", finished or "-"),
            ("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or "-")]