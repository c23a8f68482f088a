"""Authentication checklist: the public address lets in the profile's credentials and nobody else, over HTTP and
on the WebSocket upgrade alike (public.auth: none, bearer, basic, cookie or query)."""
from __future__ import annotations

import pytest

from comfycheck.judge.auth import (
    OFFERED,
    SHARED_NEEDS_AUTH,
    SPELLINGS,
    credentials_problem,
    http_answer,
    let_through,
    offered_credentials,
    websocket_answer,
)

pytestmark = pytest.mark.acceptance


def _public(profile):
    if profile.public is None:
        pytest.skip(f"profile {profile.name!r} has no [public] table: no proxy to authenticate to")
    return profile.public


def _must_ask(pub) -> None:
    """Skip where the deployment is not meant to ask for credentials at all; fail where it must."""
    if pub.auth_mode != "none":
        return
    if pub.audience == "shared":
        pytest.fail(SHARED_NEEDS_AUTH, pytrace=False)
    pytest.skip('public.auth = "none" and public.audience = "operator": the address is not meant to ask for '
                "credentials")


@pytest.mark.smoke
@pytest.mark.foundation("public_auth")
def test_public_address_takes_the_profiles_credentials(profile, deployment, measure):
    pub = _public(profile)
    problem = credentials_problem(profile)
    assert problem is None, problem
    measure.info("public auth", pub.auth_mode, audience=pub.audience)


@pytest.mark.smoke
@pytest.mark.needs("public_auth")
@pytest.mark.parametrize("offered", ["none", "wrong"])
def test_public_http_refuses_other_credentials(profile, offered):
    pub = _public(profile)
    _must_ask(pub)
    creds = pub.credentials
    answers = {spelling: http_answer(profile, offered_credentials(creds, offered), spelling) for spelling in SPELLINGS}
    through = let_through(answers, "/system_stats")
    assert not through, (
        f"{creds.describe()}: {pub.url} answered {OFFERED[offered]}: {through}: the proxy lets anyone through "
        "there; make it refuse every spelling (ComfyUI answers each route bare and under /api) without the right "
        "credentials (401)")


@pytest.mark.smoke
@pytest.mark.needs("public_auth", "public_websocket")
@pytest.mark.parametrize("offered", ["none", "wrong"])
def test_public_websocket_refuses_other_credentials(profile, offered):
    pub = _public(profile)
    _must_ask(pub)
    creds = pub.credentials
    answers = {spelling: websocket_answer(profile, offered_credentials(creds, offered), spelling)
               for spelling in SPELLINGS}
    through = let_through(answers, "/ws")
    if not through:
        return
    # what HTTP answered the same credentials, asked again here: the fix differs when HTTP is open too
    http_through = let_through({spelling: http_answer(profile, offered_credentials(creds, offered), spelling)
                                for spelling in SPELLINGS}, "/system_stats")
    cause = ("the proxy guards HTTP but not that socket; apply the same authentication to /ws and /api/ws"
             if not http_through else
             f"HTTP let them through as well ({http_through}): one cause for both, no authentication on these "
             "locations at the proxy; apply it to every location, /ws and /api/ws included")
    pytest.fail(f"{creds.describe()}: the WebSocket upgrade through {pub.url} {OFFERED[offered]} was not refused "
                f"at {through}: {cause}", pytrace=False)
