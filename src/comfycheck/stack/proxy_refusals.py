"""The embedded nginx's secure configuration for a shared ComfyUI: the operations on everyone (comfy.operations)
refused to users while the page and the API keep working. Each is the rule the exposure check's table names.

Jumping the queue (`number` / `front` in the body of POST /prompt) cannot be refused by a rule on the URL: the
proxy rewrites the body without them (njs), so the prompt is queued in its turn.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..comfy.operations import INTERNAL_LOGS
from .proxy_access import QUERY_COOKIE

NJS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
STRIP_PRIORITY_JS = """// the client's queue position is not the client's to set on a shared ComfyUI
var FIELDS = %s;
function strip(r) {
    var text = r.requestText;
    if (!text) {
        return '';
    }
    var body;
    try {
        body = JSON.parse(text);
    } catch (e) {
        return text;  // ComfyUI answers malformed JSON itself
    }
    if (body && typeof body === 'object' && !Array.isArray(body)) {
        FIELDS.forEach(function (f) { delete body[f]; });
    }
    return JSON.stringify(body);
}
export default {strip};
"""


def render_refusals(refuse: set[str], prefix: Path, passed: str, prompts_per_min: float = 0, *,
                    strip_fields: list[str] | None = None, limit_bare_only: bool = False) -> tuple[str, str, str]:
    """The main context's lines, the http block's lines and the server's locations that refuse these operations
    and limit each user's POST /prompt to `prompts_per_min` (0: no limit). `passed`: a location's lines that
    authenticate and proxy a request that is let through. Faults: `strip_fields`, the priority fields the body
    loses (else both); `limit_bare_only`, the limit on /prompt and not on /api/prompt."""
    loc: list[str] = []

    def location(match: str, body: str) -> None:
        loc.append(f"\n        location {match} {{\n            {body}{passed}\n        }}")

    def refused(match: str) -> None:
        loc.append(f"\n        location {match} {{ return 403; }}")

    if "queue_edit" in refuse:
        location("~ ^/(api/)?queue$", "limit_except GET { deny all; }")
    edit, listing = "history_edit" in refuse, "history_listing" in refuse
    if edit and listing:
        refused("~ ^/(api/)?history$")  # /history/<prompt id> stays open: a notebook fetches its own result
    elif edit:
        location("~ ^/(api/)?history$", "limit_except GET { deny all; }")
    elif listing:
        location("~ ^/(api/)?history$", "if ($request_method = GET) { return 403; }")
    for key, match in (("interrupt", "~ ^/(api/)?interrupt$"), ("free", "~ ^/(api/)?free$"),
                       ("internal_logs", f"^~ {INTERNAL_LOGS}"), ("jobs_cancel", "~ ^/(api/)+jobs/.*cancel$"),
                       ("manager", "~ ^/(api/)?(manager|customnode|snapshot|externalmodel)/")):
        if key in refuse:
            refused(match)
    if "userdata_write" in refuse:
        location("~ ^/(api/)?userdata/", "limit_except GET { deny all; }")
    main, http, limit, rewrite = "", "", "", ""
    if prompts_per_min:
        # a user: the credentials the request carries, on top of the address (a class behind one NAT shares it)
        per_min = max(1, round(prompts_per_min))
        http += f"""
    map $request_method $comfycheck_prompt_user {{
        POST "$binary_remote_addr $http_authorization $cookie_{QUERY_COOKIE}";
        default "";
    }}
    limit_req_zone $comfycheck_prompt_user zone=prompts:1m rate={per_min}r/m;"""
        limit = f"""
            limit_req zone=prompts burst={per_min} nodelay;
            limit_req_status 429;"""
    if "priority" in refuse:
        prefix.mkdir(parents=True, exist_ok=True)
        stripped = strip_fields or ["number", "front"]
        (prefix / "strip_priority.js").write_text(STRIP_PRIORITY_JS % json.dumps(stripped))
        main = f"load_module {NJS_MODULE};"
        http += (f"\n    js_import priority from {prefix / 'strip_priority.js'};\n"
                 f"    js_set $comfycheck_prompt_body priority.strip;")
        rewrite = """
            client_body_buffer_size 16m;
            client_body_in_single_buffer on;
            proxy_set_body $comfycheck_prompt_body;"""
        passed = passed.replace("proxy_request_buffering off;", "proxy_request_buffering on;")
    # the limit on both spellings, or (the fault) on the bare one alone
    spellings = [("= /prompt", limit), ("= /api/prompt", "")] if limit_bare_only else [("~ ^/(api/)?prompt$", limit)]
    for match, limited in spellings:
        if limited or rewrite:
            loc.append(f"""
        location {match} {{{limited}{rewrite}{passed}
        }}""")
    return main, http, "".join(loc)
