"""The pytest plugin: --profile, the deployment fixtures, and the targets table of the HTML report."""
from __future__ import annotations

import html
import os
import time
from pathlib import Path

import pytest

from . import parallel
from .comfy.client import ComfyClient, ComfyError
from .config.paths import DEFAULT_HTML_REPORT
from .config.profile import Profile, ProfileError, load_profile
from .judge.dependants import Dependants
from .judge.foundations import Foundations, backend_unusable, for_profile
from .judge.measurements import from_portable, portable, write_json
from .judge.recorder import ITEM_MEASUREMENTS_KEY, Recorder
from .outputs.report import failure_banner, headline, one_line, record, redact, targets_table
from .outputs.runrecord import RunRecord, add_options
from .stack import EmbeddedStack, FaultSwitch, StackError, StackInfo, ports

MARKERS = {
    "smoke": "fast, read-only checks to run right after a deploy",
    "acceptance": "the deployment checklist (includes smoke)",
    "generation": "runs a real generation on the deployment",
    "selftest": "tests of the suite itself (unit, contract, fault injection)",
    "ui": "browser checks with Playwright (ComfyUI and Forge pages, screenshots, baselines)",
    "forge": "checks of the Forge service beside ComfyUI",
    "watchdog": "the watchdog restarts ComfyUI after a crash",
    "load": "Locust load runs (consecutive generations, VRAM through NVML or /system_stats)",
    "class": "a class run: many students on the one GPU at once (loadtests/classroom.py, in a subprocess)",
    "destructive": "disrupts the service (kills ComfyUI); runs only if the profile or --allow-destructive allows it",
    "real_comfyui": "runs against the embedded stack on real ComfyUI ([stack] comfyui_dir or $COMFYCHECK_COMFYUI_DIR)",
    "foundation": "foundation(key): this check reports a foundation others stand on (comfycheck.judge.foundations)",
    "needs": "needs(key, ...): a failure of this check while that foundation is down is reported as blocked by it",
    "timing": "judges a speed (latency, startup, generation time) that other work on this host can move",
    "exclusive": "runs alone: under pytest-xdist after every other test, once the other workers are done",
    "rehearsal": "the GPU rehearsal's kit: synthetic weights of real architectures, judged by ComfyUI's own detection",
}

PROFILE_KEY = pytest.StashKey[Profile]()
MEASUREMENTS_KEY = pytest.StashKey[list]()
OUTCOMES_KEY = pytest.StashKey[dict]()
STARTED_KEY = pytest.StashKey[float]()
DEPENDANTS_KEY = pytest.StashKey[Dependants]()
RUN_KEY = pytest.StashKey[RunRecord]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("comfycheck")
    group.addoption("--profile", default=None,
                    help="deployment profile (TOML); default $COMFYCHECK_PROFILE, else profiles/local.toml")
    group.addoption("--allow-destructive", action="store_true", default=False,
                    help="run tests marked destructive (e.g. killing ComfyUI) even where the profile does not "
                         "allow them")
    group.addoption("--allow-load", action="store_true", default=False,
                    help="run load tests against a profile that does not say allow_load = true")
    group.addoption("--update-baselines", action="store_true", default=False,
                    help="UI tests: write each screenshot as the new baseline of this profile")
    group.addoption("--browser-path", default=None,
                    help="UI tests: the Chromium to launch (default: [ui] browser_path, Playwright's own, "
                         "else /usr/bin/chromium)")
    add_options(group)


@pytest.hookimpl(tryfirst=True)  # before pytest-html reads --html
def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    if hasattr(config.option, "htmlpath") and not config.option.htmlpath:
        config.option.htmlpath = DEFAULT_HTML_REPORT  # every run leaves a self-contained report
        config.option.self_contained_html = True
    if getattr(config.option, "tbstyle", None) == "auto":
        config.option.tbstyle = "short"  # the suite's messages are written to be read; no pages of source
    config.stash[OUTCOMES_KEY] = {}
    config.stash[STARTED_KEY] = time.monotonic()
    config.pluginmanager.register(_OutcomeRecorder(config), "comfycheck-outcomes")
    worker = parallel.worker_id(config)
    try:
        # before anything starts a process: the ports this one gives its stacks, and its children theirs
        if worker:
            ports.become_worker(worker, parallel.worker_count(config))
        else:
            ports.this_process()
        profile = load_profile(config.getoption("--profile"))
        if worker:  # an embedded stack of the worker's own, on its own ports
            profile = load_profile(ports.worker_profile(profile.path))
    except (ProfileError, ports.PortsError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[PROFILE_KEY] = profile
    config.stash[MEASUREMENTS_KEY] = []
    config.stash[DEPENDANTS_KEY] = Dependants(for_profile(profile))
    run = RunRecord(config, profile, config.stash[OUTCOMES_KEY], config.stash[MEASUREMENTS_KEY],
                    keeps=worker is None)
    config.stash[RUN_KEY] = run
    if worker is None:  # the controller (or a serial run) keeps the run; a worker hands it what it saw
        config.pluginmanager.register(run, "comfycheck-run-record")
    if parallel.is_controller(config):
        config.pluginmanager.register(parallel.Controller(run), "comfycheck-xdist-controller")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    return None if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") else parallel.auto_workers()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = config.stash[DEPENDANTS_KEY].in_foundation_order(items)


@pytest.hookimpl(tryfirst=True)  # a worker's groups are written before pytest-xdist sends its collection
def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[DEPENDANTS_KEY].collected(session.items)
    if parallel.is_worker(session.config):
        parallel.write_groups(session.config, session.items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    result = yield  # a failing check raises here, and needs nothing more
    item.config.stash[DEPENDANTS_KEY].confirm_own_foundation(item)
    return result


@pytest.hookimpl(optionalhook=True)
def pytest_metadata(metadata: dict, config: pytest.Config) -> None:
    profile = config.stash.get(PROFILE_KEY, None)
    if profile is not None:
        metadata["Profile"] = f"{profile.name} ({profile.path})"
        metadata["ComfyUI"] = profile.comfyui.url


@pytest.hookimpl(tryfirst=True)  # before any fixture contacts the deployment
def pytest_runtest_setup(item: pytest.Item) -> None:
    blocked = item.config.stash[DEPENDANTS_KEY].known_blocked(item)
    if blocked is not None:
        pytest.skip(blocked)
    if parallel.exclusive(item) and parallel.is_worker(item.config):
        parallel.wait_alone(item.config, parallel.ALONE_WITHIN_S)
    if item.get_closest_marker("destructive") is None:
        return
    profile = item.config.stash[PROFILE_KEY]
    if not (profile.allow_destructive or item.config.getoption("--allow-destructive")):
        pytest.skip(f"destructive test: profile {profile.name!r} does not allow it (allow_destructive = false); "
                    "pass --allow-destructive to run it anyway")


def pytest_report_header(config: pytest.Config) -> str:
    p = config.stash[PROFILE_KEY]
    stack = " (embedded stack)" if p.embedded else ""
    return f"comfycheck profile: {p.name} from {p.path}; ComfyUI {p.comfyui.url}{stack}"


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> Profile:
    return pytestconfig.stash[PROFILE_KEY]


@pytest.fixture(scope="session")
def foundations(pytestconfig: pytest.Config) -> Foundations:
    """The run's foundations (comfycheck.judge.foundations), for a fixture that checks one itself (the page load)."""
    return pytestconfig.stash[DEPENDANTS_KEY].foundations


@pytest.fixture(scope="session")
def run_record(pytestconfig: pytest.Config) -> RunRecord:
    """This run's record in the history: a check hands it what it saw of the deployment (its custom nodes)."""
    return pytestconfig.stash[RUN_KEY]


@pytest.fixture(scope="session")
def deployment(profile: Profile, foundations: Foundations):
    """The deployment under test; for the local profile, the embedded stack (started once, reused if running).
    Its start failing is the root cause of every check that needs the stack (the foundation 'stack')."""
    if not profile.embedded:
        yield None
        return
    stack = EmbeddedStack(profile)
    failed: str | None = None
    try:
        info = stack.up()
    except StackError as exc:
        failed = f"embedded stack: {exc}"
    foundations.report("stack", failed)
    if failed:
        pytest.fail(failed, pytrace=False)
    yield info
    if info.owned:
        stack.down()


@pytest.fixture(scope="session")
def comfy(profile: Profile, deployment: StackInfo | None, pytestconfig: pytest.Config, foundations: Foundations):
    """ComfyClient on the backend; fails every test at once, with the URL, when ComfyUI cannot be reached. Its
    GET /system_stats is the backend foundation's probe: a failure here is not asked again."""
    client = ComfyClient.from_profile(profile)
    try:
        pytestconfig.stash[RUN_KEY].saw_system_stats(client.system_stats())
    except ComfyError as exc:
        client.close()
        foundations.report("backend", backend_unusable(profile, exc))
        pytest.fail(backend_unusable(profile, exc), pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def public_comfy(profile: Profile, deployment: StackInfo | None):
    """ComfyClient on the public HTTPS URL, sending the Origin a browser on that page sends."""
    if profile.public is None:
        pytest.skip(f"profile {profile.name!r} has no [public] table: no reverse proxy to check")
    try:
        client = ComfyClient.from_profile(profile, public=True, origin=profile.public.origin)
    except ComfyError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield client
    client.close()


@pytest.fixture
def proxy_faults(profile: Profile, deployment):
    """Switch faults on in the embedded stack's nginx (see comfycheck.stack.proxy.PROXY_FAULTS)."""
    if not (profile.embedded and profile.public):
        pytest.skip(f"proxy fault injection needs the embedded stack's proxy; profile {profile.name!r} has none")
    stack = EmbeddedStack(profile)
    yield stack.set_proxy_faults
    stack.set_proxy_faults()


@pytest.fixture
def fault_switch(profile: Profile, deployment):
    """The embedded stand-in's fault switches; every fault is switched off again after the test."""
    if profile.stack is None or not profile.stack.embedded:
        pytest.skip(f"fault injection needs the embedded stack; profile {profile.name!r} has none")
    if profile.stack.real:
        pytest.skip(f"fault switches are the stand-in's; profile {profile.name!r} runs real ComfyUI")
    switch = FaultSwitch(profile.stack.control_url)
    switch.reset()
    yield switch
    switch.reset()


@pytest.fixture
def measure(request: pytest.FixtureRequest, profile: Profile) -> Recorder:
    return Recorder(profile, request.config.stash[MEASUREMENTS_KEY], request.node)


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix, summary, postfix, session):
    measurements = session.config.stash.get(MEASUREMENTS_KEY, [])
    profile = session.config.stash.get(PROFILE_KEY, None)
    started = session.config.stash.get(STARTED_KEY, None)
    run = session.config.stash.get(RUN_KEY, None)
    comparison = run.comparison() if run is not None else None
    prefix.append(headline(list(session.config.stash.get(OUTCOMES_KEY, {}).values()), measurements,
                           time.monotonic() - started if started is not None else None,
                           comparison.html() if comparison else ""))
    if profile is not None:
        prefix.append(f"<p>Profile <b>{html.escape(profile.name)}</b>: {html.escape(profile.description)}</p>")
    prefix.append(targets_table(measurements) if measurements else "<p>No measurements were recorded.</p>")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if DEPENDANTS_KEY in item.config.stash:
        item.config.stash[DEPENDANTS_KEY].convert(item, report, one_line(report))
    profile = item.config.stash.get(PROFILE_KEY, None)
    secrets = profile.secrets() if profile else []
    if secrets:
        redact(report, secrets)
    try:
        from pytest_html import extras
    except ImportError:
        return
    if report.failed:  # the message first, above the traceback
        report.extras = [extras.html(failure_banner(one_line(report)))] + getattr(report, "extras", [])
    measured = item.stash.get(ITEM_MEASUREMENTS_KEY, []) if report.when == "call" else []
    if measured and parallel.is_worker(item.config):  # the controller writes the report and the history
        report.comfycheck_measurements = [portable(m) for m in measured]
    if measured:
        report.extras = getattr(report, "extras", []) + [extras.html(targets_table(measured))]


class _OutcomeRecorder:
    """Every test's outcome and one-line message, for the report's headline verdict."""

    def __init__(self, config: pytest.Config):
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record(self.config.stash[OUTCOMES_KEY], report)
        if DEPENDANTS_KEY in self.config.stash:
            self.config.stash[DEPENDANTS_KEY].logged(report)
        handed = getattr(report, "comfycheck_measurements", None)
        if handed and not parallel.is_worker(self.config) and MEASUREMENTS_KEY in self.config.stash:
            self.config.stash[MEASUREMENTS_KEY].extend(from_portable(d) for d in handed)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if parallel.is_worker(session.config):
        session.config.workeroutput[parallel.SEEN_KEY] = session.config.stash[RUN_KEY].seen()  # type: ignore
        parallel.worker_done(session.config)
        return
    measurements = session.config.stash.get(MEASUREMENTS_KEY, None)
    html_path = session.config.getoption("htmlpath", None)
    if not measurements or not html_path:
        return
    write_json(Path(html_path).with_name("measurements.json"), measurements)
