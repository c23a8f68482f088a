"""The exposure check's verdicts: for each operation on everyone, what a logged-in user reaches through the public
address, what the profile requires ([public] audience, allowed_operations, refused_operations), and the proxy
rule that refuses it; the report's table of them."""
from __future__ import annotations

import html
from dataclasses import dataclass

from ..comfy.client import ComfyClient
from ..comfy.operations import OPERATIONS, Operation, Probe
from ..config.profile import Profile


@dataclass(frozen=True)
class Row:
    operation: Operation
    probe: Probe
    must_refuse: bool

    @property
    def reachable(self) -> str:
        return {True: "reachable", False: "refused", None: "absent or not probed"}[self.probe.reachable]

    @property
    def required(self) -> str:
        return "refused" if self.must_refuse else "allowed"

    @property
    def exposed(self) -> bool:
        return self.must_refuse and self.probe.reachable is True

    @property
    def verdict(self) -> str:
        if self.exposed:
            return "FAIL"
        if self.must_refuse and self.probe.answer.startswith("not probed"):
            return "not assessed"
        return "ok"


def survey(profile: Profile) -> list[Row]:
    """Every operation probed through the public address with the profile's credentials (a logged-in user)."""
    pub = profile.public
    assert pub is not None
    with ComfyClient.from_profile(profile, public=True, origin=pub.origin) as user, \
            ComfyClient.from_profile(profile) as direct:
        return [Row(op, op.probe(user, direct), pub.must_refuse(op.key)) for op in OPERATIONS]


def exposed_message(rows: list[Row]) -> str:
    bad = [r for r in rows if r.exposed]
    return "; ".join(f"{r.operation.label} is reachable ({r.probe.answer}): refuse it at the proxy, nginx "
                     f"`{r.operation.nginx}`, IIS {r.operation.iis}" for r in bad)


def table_html(rows: list[Row]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("operation", "through the public address", "the profile requires",
                                             "verdict", "what was answered", "nginx", "IIS ARR"))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in (
            r.operation.label, r.reachable, r.required, r.verdict, r.probe.answer, r.operation.nginx,
            r.operation.iis)) + "</tr>" for r in rows)
    return (f'<h3>What one user can do to everyone</h3><table class="comfycheck-exposure" border="1" '
            f'cellpadding="4" style="border-collapse:collapse"><tr>{head}</tr>{body}</table>')
