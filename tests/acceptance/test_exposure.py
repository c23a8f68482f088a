"""Shared-deployment checklist: what one logged-in user can do to everyone through the public address (clear the
queue, interrupt whoever runs, unload the model, read the log, jump the queue ...), every probe harmless."""
from __future__ import annotations

import pytest

from comfycheck.judge.exposure import exposed_message, survey, table_html

pytestmark = pytest.mark.acceptance


@pytest.mark.needs("public_auth")
def test_a_user_cannot_act_on_everyone_else(profile, deployment, measure, extras):
    if profile.public is None:
        pytest.skip(f"profile {profile.name!r} has no [public] table: no users reach ComfyUI but the operator")
    rows = survey(profile)
    try:
        from pytest_html import extras as html_extras
        extras.append(html_extras.html(table_html(rows)))
    except ImportError:
        pass
    for r in rows:
        measure.info(f"exposure: {r.operation.key}", r.reachable, required=r.required, answer=r.probe.answer)
    exposed = [r for r in rows if r.exposed]
    measure("exposed_operations", len(exposed), audience=profile.public.audience,
            fix=exposed_message(rows) or "")
