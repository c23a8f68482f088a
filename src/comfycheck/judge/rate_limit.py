"""A user's prompt rate at the proxy: a bounded burst of POST /prompt (at most twice the profile's
`public.rate_limit_per_min`, each an empty prompt that ComfyUI refuses without queueing anything), where the
proxy starts answering 429, and whether it then lets the user go on at the profile's rate (the lower bound: a
proxy that throttles each student far below it refuses a class most of the time)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..comfy.client import ComfyClient
from ..config.profile import Profile

LIMITED = (429, 503)  # nginx's limit_req answers 503 unless limit_req_status says otherwise
EMPTY_PROMPT: dict = {"prompt": {}}  # ComfyUI: 400, "Prompt has no outputs"; never queued
# after the burst's first refusal, one more request this many of the profile's intervals (60 / rate s) later: a
# proxy refilling at the profile's rate has room for it by then, one at two thirds of it or less has not
REFILL_MARGIN = 1.5


@dataclass(frozen=True)
class Burst:
    sent: int  # requests sent when the burst stopped (at the first refusal, else all of it)
    accepted: int  # answered by ComfyUI before the proxy's first refusal
    refused_status: int | None  # the proxy's answer once the limit was reached; None: never
    spelling: str = ""  # "" (POST /prompt) or "/api" (POST /api/prompt)
    bound: int = 0  # the burst's own bound: twice the profile's rate, plus one
    refill_s: float | None = None  # how long after the refusal the one more request was sent; None: not asked
    refilled: bool | None = None  # whether the proxy took it (a refill at about the profile's rate)

    def describe(self) -> str:
        """What was seen, no more: a proxy that let a whole burst through may still limit, above the burst."""
        path = f"POST {self.spelling}/prompt"
        if self.refused_status is None:
            return (f"all {self.sent} of a burst of {self.bound or self.sent} {path} got through: the proxy's "
                    f"limit there, if it has one, is above {self.sent}")
        said = (f"{self.accepted} {path} got through, then the proxy answered HTTP {self.refused_status} to "
                f"request {self.sent} of a burst of at most {self.bound or self.sent}")
        if self.refilled is None:
            return said
        return said + (f"; {self.refill_s:.1f} s later it took one more" if self.refilled else
                       f"; {self.refill_s:.1f} s later it still refused one more")


def burst(profile: Profile, spelling: str = "", *, refill: bool = False) -> Burst:
    """Sends at most twice the limit to POST {spelling}/prompt, one after the other, and stops at the first
    refusal. Asked of each spelling in turn ("" then "/api"), a proxy whose limit covers both refuses the second
    burst at once (one user's zone), and one that forgot a spelling lets that burst through. `refill`: after the
    refusal, one more request REFILL_MARGIN intervals of the profile's rate later, to tell a proxy that lets the
    user go on at that rate from one that throttles far below it (whatever earlier prompts left in its bucket)."""
    pub = profile.public
    assert pub is not None and pub.rate_limit_per_min > 0
    size = int(2 * pub.rate_limit_per_min) + 1
    accepted = 0
    with ComfyClient.from_profile(profile, public=True, origin=pub.origin) as user:
        for sent in range(1, size + 1):
            status = user.request("POST", f"{spelling}/prompt", bare=True, json=EMPTY_PROMPT, expect=()).status_code
            if status in LIMITED:
                if not refill:
                    return Burst(sent, accepted, status, spelling, size)
                wait = REFILL_MARGIN * 60 / pub.rate_limit_per_min
                time.sleep(wait)  # the rate's own interval: the measurement, not a wait for something to happen
                again = user.request("POST", f"{spelling}/prompt", bare=True, json=EMPTY_PROMPT, expect=())
                return Burst(sent, accepted, status, spelling, size, wait, again.status_code not in LIMITED)
            accepted += 1
    return Burst(size, accepted, None, spelling, size)
