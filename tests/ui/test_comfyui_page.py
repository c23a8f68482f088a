"""The ComfyUI page, through the public HTTPS address, in a real browser: ready, healthy, connected, as before."""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Error as PlaywrightError

from comfycheck import hints
from comfycheck.comfy import packages
from comfycheck.comfy.expected import predict
from comfycheck.comfy.workflows import load_workflow, make_unique
from comfycheck.judge import install
from comfycheck.probes.browser import COMFYUI_EXPECTED_404, COMFYUI_EXPECTED_CONSOLE, PageWatch
from tests.ui.pages import ComfyPage, pump_until


@dataclass
class Load:
    """What one visit of the page showed: readiness, problems, its WebSockets."""

    comfy: ComfyPage
    watch: PageWatch
    error: str | None = None
    dialogs_closed: int = 0
    served_frontend: str | None = None  # the frontend the page says it is
    required_frontend: str | None = None  # the one ComfyUI requires (/system_stats)

    def frontend_differs(self) -> str:
        """What to say instead of "refresh the baseline" while the page is not the frontend ComfyUI requires."""
        if self.served_frontend and self.required_frontend and self.served_frontend != self.required_frontend:
            return (f"the page serves frontend {self.served_frontend}, ComfyUI requires {self.required_frontend}: "
                    "fix the install first (test_comfyui_packages_meet_its_requirements says how); a baseline "
                    "taken now would hide it")
        return ""


@pytest.fixture(scope="module")
def comfy_page(module_page, profile, deployment, comfy, watch_factory, foundations):
    if profile.public_url is None:
        pytest.skip(f"profile {profile.name!r} has no [public] table: the page is checked through the proxy")
    creds = profile.public_credentials
    if creds.browser_refusal():
        pytest.skip(creds.browser_refusal())
    page_url = profile.public_url + "/"
    load = Load(ComfyPage(module_page, page_url, opened_as=creds.with_token(page_url)),
                watch_factory(module_page, COMFYUI_EXPECTED_404, COMFYUI_EXPECTED_CONSOLE))
    load.error = load.comfy.open(load.watch, profile.ui.timeout_s)
    foundations.report("comfyui_page", load.error)
    if load.error is None:
        load.dialogs_closed = load.comfy.close_dialogs()
        load.served_frontend = load.comfy.frontend_version()
        load.required_frontend = packages.required_frontend(comfy.system_stats())
        foundations.report("served_frontend",
                           install.served_frontend_problem(load.served_frontend, load.required_frontend))
    return load


def _ready(load):
    if load.error:
        pytest.fail(load.error, pytrace=False)


@pytest.mark.foundation("comfyui_page")
def test_comfyui_page_becomes_ready(comfy_page, module_page, screenshots, measure):
    png, _ = screenshots.take(module_page, "comfyui", required=False)
    _ready(comfy_page)
    measure.info("ComfyUI page ready", round(comfy_page.comfy.ready_s, 2), "s",
                 dialogs_closed=comfy_page.dialogs_closed, title=module_page.title())


@pytest.mark.foundation("served_frontend")
def test_comfyui_page_serves_the_required_frontend(comfy_page, comfy, profile, measure):
    _ready(comfy_page)
    served, required = comfy_page.served_frontend, comfy_page.required_frontend
    measure.info("frontend the page serves", served or "not said", required=required or "not said")
    if served is None or required is None:
        pytest.skip("the page does not say its frontend version (window.__COMFYUI_FRONTEND_VERSION__)" if served
                    is None else "ComfyUI does not say the frontend it requires (system.required_frontend_version)")
    problem = install.served_frontend_problem(served, required)
    if problem:
        read = install.read_log(profile, comfy)  # ComfyUI's log has the command for its own venv and folder
        logged = read.log.requirements_command if read.log is not None else None
        pytest.fail(f"{problem}: {hints.install_comfyui_requirements(profile.comfyui.venv, logged)}", pytrace=False)


@pytest.mark.needs("served_frontend")
def test_comfyui_page_has_no_console_errors_or_failed_requests(comfy_page, measure):
    _ready(comfy_page)
    w = comfy_page.watch
    measure.info("tolerated (known frontend behaviour)", len(w.tolerated), details=w.tolerated)
    measure.info("blocked requests outside the profile's hosts", len(w.blocked), urls=sorted(set(w.blocked)))
    measure.info("requests the proxy refuses, as the profile requires", len(w.told), details=w.told)
    problems = w.problems()
    assert not problems, "the ComfyUI page is not healthy:\n  " + "\n  ".join(problems)


@pytest.mark.needs("public_websocket")
def test_comfyui_page_websocket_receives_status(comfy_page, module_page, profile):
    _ready(comfy_page)
    watch = comfy_page.watch
    try:
        pump_until(module_page, lambda: watch.websocket_state()[0] != "pending", 10,
                   "the page's WebSocket to /ws greeted or refused")
    except AssertionError:
        pytest.fail("the page opened no WebSocket to /ws within 10 s: the frontend falls back to polling and "
                    "shows 'Reconnecting...'", pytrace=False)
    state, detail = watch.websocket_state()
    assert state == "greeted", (
        f"the page's WebSocket to /ws was refused, it never received `status`: {detail}; the frontend falls back "
        "to polling and shows 'Reconnecting...'")


@pytest.mark.needs("served_frontend")
def test_comfyui_page_matches_baseline(comfy_page, module_page, profile, screenshots, measure):
    _ready(comfy_page)
    # A first visit shows an empty graph, later ones the default graph: compare a fixed workflow instead.
    workflow = load_workflow(profile.workflow_path(profile.comfyui.smoke_workflow))
    comfy = comfy_page.comfy
    comfy.load_workflow(workflow, "comfycheck-baseline")
    comfy.wait_for_nodes(len(workflow), 10)
    comfy.reset_view()
    comfy.next_frames()
    png, masks = screenshots.take(module_page, "comfyui-baseline-view", masks=comfy.masks)
    screenshots.compare(png, "comfyui", masks, measure, instead_of_update=comfy_page.frontend_differs())


@pytest.mark.generation
@pytest.mark.needs("public_websocket", "served_frontend")
def test_comfyui_run_button_runs_smoke_workflow(comfy_page, module_page, profile, screenshots, measure):
    if not profile.ui.run_workflow:
        pytest.skip("the profile says not to run a workflow from the page ([ui] run_workflow = false)")
    _ready(comfy_page)
    workflow = make_unique(load_workflow(profile.workflow_path(profile.comfyui.smoke_workflow)))
    comfy = comfy_page.comfy
    comfy.load_workflow(workflow, "comfycheck-smoke")
    comfy.reset_view()  # the output drawn 1:1
    t0 = time.monotonic()
    with module_page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/prompt")) as posted:
        comfy.run_button.first.click()
    answer = posted.value
    assert answer.status == 200, f"clicking Run: POST /prompt answered {answer.status}: {answer.text()[:300]}"
    prompt_id = answer.json()["prompt_id"]

    def finished():
        state, detail = comfy_page.watch.websocket_state()
        if state == "refused":  # the page cannot hear the end of the run: no use waiting for it
            raise AssertionError(f"the run of prompt {prompt_id} cannot be followed on the page: its WebSocket "
                                 f"was refused: {detail}")
        for ws in comfy_page.watch.websockets:
            for m in ws["received"]:
                data = m.get("data") or {}
                if data.get("prompt_id") == prompt_id and m.get("type") in ("execution_success", "execution_error"):
                    return m
        return None

    end = pump_until(module_page, finished, profile.comfyui.generation_timeout_s,
                     f"the end of prompt {prompt_id} on the page's WebSocket")
    assert end["type"] == "execution_success", f"the run started from the page failed: {json.dumps(end['data'])[:400]}"
    measure.info("Run clicked -> execution_success on the page's WebSocket", round(time.monotonic() - t0, 2), "s",
                 prompt_id=prompt_id)
    try:
        comfy.wait_for_previews(profile.ui.timeout_s)
    except PlaywrightError as exc:
        pytest.fail(f"the run succeeded but the page never showed its output image: {str(exc).splitlines()[0]}",
                    pytrace=False)
    measure.info("Run clicked -> output image drawn on the page", round(time.monotonic() - t0, 2), "s")
    png, _ = screenshots.take(module_page, "comfyui-after-run")
    (want,) = predict(workflow)  # the output's colour, as ComfyUI computes it
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    shown = int((pixels == np.array(want.rgb, np.uint8)).all(axis=2).sum())
    assert shown >= 0.9 * want.size[0] * want.size[1], (
        f"the page does not show the {want.describe()} output after the run ({shown} pixels of that colour)")
