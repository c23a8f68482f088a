"""Shared-deployment checklist: one user cannot flood the queue; the proxy limits each user's prompts per minute
(public.rate_limit_per_min) and says so with 429."""
from __future__ import annotations

import pytest

from comfycheck.judge.auth import SPELLINGS
from comfycheck.judge.rate_limit import burst

pytestmark = pytest.mark.acceptance


@pytest.mark.needs("public_auth")
def test_the_proxy_limits_each_users_prompts(profile, deployment, measure):
    pub = profile.public
    if pub is None or not pub.rate_limit_per_min:
        pytest.skip("public.rate_limit_per_min is not set: the profile asks for no per-user limit")
    # each spelling in turn: ComfyUI queues from /prompt and /api/prompt alike; the worse one is judged
    bursts = [burst(profile, spelling, refill=n == 0) for n, spelling in enumerate(SPELLINGS)]
    seen = max(bursts, key=lambda b: b.accepted)
    target = profile.targets["prompt_burst_accepted"]
    limit = pub.rate_limit_per_min
    measure.against(target.with_threshold(limit * 1.1 + 1, rule=target.rule), seen.accepted,
                    sent=seen.sent, refused_with=seen.refused_status, limit_per_min=limit,
                    spellings="; ".join(b.describe() for b in bursts),
                    fix=f"{seen.describe()}; limit POST /prompt per user at the proxy, both spellings: nginx "
                        f"`limit_req_zone ... rate={limit:g}r/m;` with `limit_req ... burst={limit:g} nodelay; "
                        "limit_req_status 429;` in `location ~ ^/(api/)?prompt$`, IIS Dynamic IP Restrictions or "
                        "ARR rate limiting on both URLs")
    slow = next((b for b in bursts if b.refilled is False), None)
    if slow is not None:
        pytest.fail(f"{slow.describe()}: the proxy lets a user go on at less than two thirds of the profile's "
                    f"public.rate_limit_per_min = {limit:g} a minute (one prompt every {60 / limit:.1f} s): a class "
                    f"behind it is refused most of the time; set the proxy's rate to {limit:g} a minute (nginx "
                    f"`rate={limit:g}r/m`), or the profile's to what the proxy allows", pytrace=False)
    if seen.refused_status is not None and seen.refused_status != 429:
        pytest.fail(f"{seen.describe()}: a limit should answer 429 Too Many Requests (nginx limit_req_status 429) "
                    "so that clients know to wait", pytrace=False)
