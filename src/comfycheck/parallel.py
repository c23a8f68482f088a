"""The suite over pytest-xdist's workers: how many, which tests one worker runs together and in order, and what a
worker hands back to the controller (the figures it measured, what it saw of the deployment).

The checks on the deployment share their foundations (comfycheck.judge.dependants) and must never run beside one
another against it (a latency taken during a load run, a kill during a generation): they form one group, run by
one worker in the order a serial run gives them. A test or module marked `xdist_group(name)` is kept with the
others of its name (it shares something it starts once, such as a fleet of stand-ins). Everything else spreads
over the workers, each on an embedded stack of its own (comfycheck.stack.ports), the longest first (by what they
took last time). A test marked `exclusive` runs after everything else, once the other workers are done.

pytest-xdist's own `--dist loadgroup` marks its groups by renaming the tests (`test@group`), which pytest 9.2's
node ids no longer take (pytest-xdist issue #1386), and which would rename them in the report and the history:
here the workers write the groups to a file the controller's scheduler reads, and every test keeps its name.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import psutil
import pytest
from xdist.scheduler import LoadScopeScheduling

from .config.paths import STATE_ROOT
from .outputs.runrecord import RunRecord
from .polling import wait_until

DEPLOYMENT_GROUP = "deployment"
GROUPS_KEY = "comfycheck_groups"  # workerinput: the folder the workers write their groups to
SEEN_KEY = "comfycheck_seen"  # workeroutput: what the worker saw of the deployment (versions)
MAX_AUTO_WORKERS = 8
DURATIONS_FILE = STATE_ROOT / "durations.json"  # what each test took in the last parallel run
ALONE_WITHIN_S = 1800.0  # how long an exclusive test waits for the other workers to finish what they have


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def is_controller(config: pytest.Config) -> bool:
    """pytest-xdist's controller of a run that has workers (with --collect-only, pytest-xdist starts none)."""
    return not is_worker(config) and getattr(config.option, "dist", "no") != "no" and not config.option.collectonly


def worker_id(config: pytest.Config) -> str | None:
    return config.workerinput["workerid"] if is_worker(config) else None  # type: ignore[attr-defined]


def worker_count(config: pytest.Config) -> int:
    return int(config.workerinput["workercount"])  # type: ignore[attr-defined]


def auto_workers() -> int:
    """`-n auto`: the suite mostly waits (on servers, browsers, subprocesses it starts), so two workers a core,
    capped where more only queue for the CPU and memory."""
    return max(2, min(MAX_AUTO_WORKERS, 2 * (psutil.cpu_count(logical=True) or 1)))


def exclusive(item: pytest.Item) -> bool:
    return item.get_closest_marker("exclusive") is not None


def group_of(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    if item.get_closest_marker("selftest") is None:
        return DEPLOYMENT_GROUP
    return None


class Groups:
    """The controller's side: a folder for this run, handed to each worker, read once every worker collected."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="comfycheck-xdist-"))

    def configure_node(self, node) -> None:
        node.workerinput[GROUPS_KEY] = str(self.folder)

    def read(self) -> tuple[dict[str, str], set[str]]:
        """(each grouped test's group, the tests that run alone), as the workers wrote them."""
        groups: dict[str, str] = {}
        alone: set[str] = set()
        for path in sorted(self.folder.glob("*.json")):
            written = json.loads(path.read_text())
            groups.update(written["groups"])
            alone.update(written["exclusive"])
        return groups, alone

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def write_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The worker's side, before it tells the controller its collection: each grouped test's group."""
    folder = Path(config.workerinput[GROUPS_KEY])  # type: ignore[attr-defined]
    groups = {item.nodeid: g for item in items if (g := group_of(item)) is not None}
    alone = [item.nodeid for item in items if exclusive(item)]
    path = folder / f"{worker_id(config)}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"groups": groups, "exclusive": alone}))
    os.replace(tmp, path)


def worker_done(config: pytest.Config) -> None:
    """At a worker's session end: it runs nothing more (its process lives on until the controller ends)."""
    (Path(config.workerinput[GROUPS_KEY]) / f"{worker_id(config)}.done").touch()  # type: ignore[attr-defined]


def wait_alone(config: pytest.Config, timeout_s: float) -> None:
    """In a worker given an exclusive test: wait until every other worker, shut down by the scheduler once only
    exclusive tests were left, has finished what it had."""
    folder = Path(config.workerinput[GROUPS_KEY])  # type: ignore[attr-defined]
    others = worker_count(config) - 1
    wait_until(lambda: len(list(folder.glob("*.done"))) >= others, timeout=timeout_s, interval=0.2,
               what=f"the other {others} pytest-xdist worker(s) done")


class Durations:
    """How long each test took last time (set-up and teardown included), kept across runs: the scheduler hands out
    the longest work first, so no long test starts last while the other workers idle."""

    def __init__(self, path: Path = DURATIONS_FILE):
        self.path = path
        try:
            self.known: dict[str, float] = {k: float(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            self.known = {}
        self.taken: dict[str, float] = {}

    def add(self, nodeid: str, seconds: float) -> None:
        self.taken[nodeid] = self.taken.get(nodeid, 0.0) + seconds

    def guess(self, nodeids) -> float:
        """The seconds these tests should take: what each took last time, a test never timed the mean of those."""
        mean = sum(self.known.values()) / len(self.known) if self.known else 1.0
        return sum(self.known.get(n, mean) for n in nodeids)

    def save(self) -> None:
        if not self.taken:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**self.known, **self.taken}, indent=0, sort_keys=True))
        os.replace(tmp, self.path)


class GroupScheduling(LoadScopeScheduling):
    """pytest-xdist's scope scheduling, the scopes being the groups: a group goes whole to one worker, its tests
    in collection order; an ungrouped test is a scope of its own. The largest scopes are handed out first
    (by what they took last time, Durations), so the long chain of deployment checks starts at once. Tests marked
    `exclusive` are held back until nothing else is left to hand out; then one worker takes them all and the
    others are shut down, so they finish what they have and leave the machine to it (wait_alone)."""

    def __init__(self, config: pytest.Config, groups: Groups, durations: Durations, log=None):
        super().__init__(config, log)
        self._groups_source = groups
        self._durations = durations
        self._groups: dict[str, str] | None = None
        self._alone: set[str] = set()

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:  # first asked once every worker has collected (and written its groups)
            self._groups, self._alone = self._groups_source.read()
        return self._groups.get(nodeid, nodeid)

    def _exclusive(self, scope: str) -> bool:
        return any(nodeid in self._alone for nodeid in self.workqueue[scope])

    def _assign_work_unit(self, node) -> None:
        if not self.workqueue:
            return
        shared = max((scope for scope in self.workqueue if not self._exclusive(scope)),
                     key=lambda scope: self._durations.guess(self.workqueue[scope]), default=None)
        scopes = [shared] if shared is not None else list(self.workqueue)  # only exclusive ones left: all to it
        for scope in scopes:
            work_unit = self.workqueue.pop(scope)
            self.assigned_work.setdefault(node, {})[scope] = work_unit
            collection = self.registered_collections[node]
            node.send_runtest_some([collection.index(nodeid) for nodeid, done in work_unit.items() if not done])
        if shared is None:
            for other in self.nodes:
                if other is not node and not other.shutting_down:
                    other.shutdown()


class Controller:
    """pytest-xdist's controller, as a plugin: its scheduler (GroupScheduling), and what the workers hand back for
    the run's record (the measurements come with each test's report, see the plugin's makereport)."""

    def __init__(self, run: RunRecord):
        self.run = run
        self.groups = Groups()
        self.durations = Durations()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        self.groups.configure_node(node)

    @pytest.hookimpl(tryfirst=True, optionalhook=True)  # before pytest-xdist's own choice
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        if config.getvalue("dist") == "each":
            return None
        return GroupScheduling(config, self.groups, self.durations, log)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.durations.add(report.nodeid, report.duration)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        seen = getattr(node, "workeroutput", {}).get(SEEN_KEY)
        if seen:
            self.run.saw(seen)

    def pytest_sessionfinish(self) -> None:
        self.durations.save()

    def pytest_unconfigure(self) -> None:
        self.groups.close()
