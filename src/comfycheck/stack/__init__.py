"""The embedded reference stack: started on loopback, found again by its state file, stopped cleanly."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from .. import ComfycheckError, extras
from ..comfy.client import ComfyClient, ComfyError
from ..config.auth import Credentials
from ..config.paths import PKI_DIR, STATE_ROOT
from ..config.profile import Profile
from ..config.settings import StackSettings
from ..polling import DeadlineExceeded, wait_until
from . import certs, fleet, owned, real, supervisor
from .fault_switch import FaultSwitch as FaultSwitch
from .info import StackInfo as StackInfo
from .proxy import PROXY_FAULTS, NginxProxy, ProxyConfig, ProxyError, ports_of
from .proxy_access import ProxyAuthError


class StackError(ComfycheckError):
    pass


def _hostport(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _port_open(url: str) -> bool:
    try:
        with socket.create_connection(_hostport(url), timeout=0.5):
            return True
    except OSError:
        return False


class EmbeddedStack:
    def __init__(self, profile: Profile):
        if profile.stack is None or not profile.stack.embedded:
            raise StackError(f"profile {profile.path} has no embedded stack ([stack] embedded = true)")
        self.profile = profile
        self.settings: StackSettings = profile.stack
        self.state_dir = STATE_ROOT / f"stack-{_hostport(profile.comfyui.url)[1]}"
        self.state_file = self.state_dir / "state.json"
        self.proxy = NginxProxy(self.state_dir / "nginx")
        self.proxy_faults_file = self.state_dir / "proxy-faults.json"
        self.proxy_auth_file = self.state_dir / "proxy-auth.sha256"  # what the running proxy asks for
        self.forge_stopped_flag = self.state_dir / "forge-stopped"  # stopped on purpose: do not bring it back
        self.left_alone: list[str] = []  # processes a stale state file named that are not the stack's now

    # --- state ----------------------------------------------------------------------------------
    def _read_state(self) -> StackInfo | None:
        try:
            return StackInfo(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _alive(self, info: StackInfo) -> bool:
        return info.own("supervisor", info.supervisor_pid)

    def _healthy(self) -> bool:
        with ComfyClient(self.profile.comfyui.url, timeout=2.0) as c:
            return bool(c.system_stats().get("system"))

    def _wait_healthy(self) -> bool:
        """The stack is up; its stand-in may be between a kill and its restart: give the watchdog its time."""
        def probe() -> bool:
            try:
                return self._healthy()
            except ComfyError:
                return False
        try:
            wait_until(probe, timeout=self.settings.startup_timeout_s, interval=0.1,
                       what=f"{self.backend_name} at {self.profile.comfyui.url} answering again")
            return True
        except DeadlineExceeded:
            return False

    def running(self) -> StackInfo | None:
        info = self._read_state()
        if info and self._alive(info):
            healthy = self._wait_healthy()
            if healthy and self.fleet_urls:  # a fleet's backend stopped by a self-test comes back
                healthy = fleet.bring_back(self.profile, self.settings.startup_timeout_s)
            try:
                if healthy and self.profile.public and not info.own("proxy", info.proxy_pid):
                    info = self._start_proxy(info)  # the proxy died on its own: bring it back
                elif healthy and self.profile.public and self._proxy_asks_otherwise():
                    NginxProxy.stop(info.proxy_pid)  # a profile with other credentials on the same ports
                    info = self._start_proxy(info)
            except ProxyError as exc:
                raise StackError(f"reverse proxy: {exc}") from None
            if healthy and self.profile.forge_url and not self.forge_stopped_flag.exists() \
                    and not info.own("forge", info.forge_pid):
                info = self.start_forge(info)
            return info if healthy else None
        return None

    # --- up / down ------------------------------------------------------------------------------
    def up(self) -> StackInfo:
        """Start the stack, or reuse the one already running for this profile's ports."""
        existing = self.running()
        if existing:
            existing.owned = False
            return existing
        lacking = extras.lacking("stack", "the embedded stack (the stand-in ComfyUI, Forge's stand-in)")
        if lacking and not self.settings.real:
            raise StackError(lacking)
        stale = self._read_state()
        if stale:
            self.down_processes(stale)
            self.state_file.unlink(missing_ok=True)
        urls = [self.profile.comfyui.url, self.settings.control_url, self.settings.supervisor_url, *self.fleet_urls]
        if self.profile.forge_url:
            urls.append(self.profile.forge_url)
        if self.profile.public:
            urls += [u for u in (self.profile.public.url, self.profile.public.http_url) if u]
        for url in urls:
            if _port_open(url):
                raise StackError(
                    f"cannot start the embedded stack: {url} is already in use by another program "
                    f"(stop it, or choose other ports in {self.profile.path})"
                    + "".join(f"; {note}" for note in self.left_alone))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.state_dir / ("comfyui.log" if self.settings.real else "standin.log")
        cmd, cwd = self._backend_command()
        programs = [supervisor.Program(supervisor.PROGRAM, cmd, log)] + self._fleet_programs(cmd)
        self.forge_stopped_flag.unlink(missing_ok=True)
        forge = self._spawn_forge() if self.profile.forge_url else None  # Gradio imports slowly: start it first
        started = time.time()
        t0 = time.monotonic()
        try:
            proc = supervisor.start(self.state_dir / "supervisor", self.settings.supervisor_url, programs, cwd,
                                    self.settings.autorestart)
        except supervisor.SupervisorError as exc:
            if forge:
                owned.stop(forge.pid, "Forge stand-in")
            raise StackError(str(exc)) from None

        def ready() -> bool:
            if proc.poll() is not None:
                raise StackError(f"supervisord exited with {proc.returncode}; see {self.state_dir / 'supervisor'}")
            try:
                return self._healthy() and all(fleet.answers(url) for url in self.fleet_urls)
            except ComfyError:
                return False

        try:
            wait_until(ready, timeout=self.settings.startup_timeout_s, interval=0.05, fatal=(StackError,),
                       what=f"{self.backend_name} at {', '.join([self.profile.comfyui.url, *self.fleet_urls])} "
                            "answering /system_stats")
        except (DeadlineExceeded, StackError) as exc:
            owned.stop(proc.pid, "supervisord")
            if forge:
                owned.stop(forge.pid, "Forge stand-in")
            raise StackError(f"{exc}; see {log}:\n{_tail(log)}") from None
        info = StackInfo(self.profile.comfyui.url, self.settings.control_url,
                         supervisor.program_pid(self.settings.supervisor_url), started, time.monotonic() - t0,
                         str(log), owned=True, supervisor_pid=proc.pid, supervisor_url=self.settings.supervisor_url)
        info.remember("supervisor", proc.pid)
        self.proxy_faults_file.unlink(missing_ok=True)  # a fresh stack starts healthy
        if self.profile.public:
            try:
                info = self._start_proxy(info)
            except ProxyError as exc:
                owned.stop(proc.pid, "supervisord")
                if forge:
                    owned.stop(forge.pid, "Forge stand-in")
                raise StackError(f"reverse proxy: {exc}") from None
        if forge:
            try:
                self._wait_forge(forge)
            except StackError:
                self.down_processes(info)
                raise
            info.forge_pid, info.forge_url = forge.pid, self.forge_url
            info.remember("forge", forge.pid)
        self._write_state(info)
        return info

    @property
    def forge_url(self) -> str:
        return self.profile.forge_url or ""

    @property
    def backend_name(self) -> str:
        return "real ComfyUI" if self.settings.real else "stand-in ComfyUI"

    def _backend_command(self) -> tuple[list[str], Path]:
        """What supervisord runs, and where: the stand-in, or real ComfyUI with a base directory of the stack's."""
        host, port = _hostport(self.profile.comfyui.url)
        models = [f"{folder}/{name}" for folder, names in self.profile.comfyui.required_models.items()
                  for name in names]
        if self.settings.real:
            try:
                comfy = real.locate(self.settings.comfyui_dir, self.settings.comfyui_python)
            except real.RealComfyUINotFound as exc:
                raise StackError(str(exc)) from None
            base = self.state_dir / "comfyui-real"
            extra = self.settings.models_dir
            found = [m for m in models if extra is not None and (extra / m).is_file()]
            real.prepare_base(base, [m for m in models if m not in found], drop=found)
            args = list(self.settings.comfyui_args)
            if extra is not None:
                args += ["--extra-model-paths-config", str(real.extra_model_paths(base, extra))]
            return comfy.command(host, port, base, args, gpu=_nvml_sees_a_gpu()), \
                comfy.directory
        _, control_port = _hostport(self.settings.control_url)
        cmd = [sys.executable, "-m", "comfycheck.standin", "--host", host, "--port", str(port),
               "--control-port", str(control_port), "--data-dir", str(self.state_dir / "comfyui"),
               "--startup-delay", str(self.settings.startup_delay_s),
               "--model-step-s", str(self.settings.model_step_s),
               "--vram-total-gib", str(self.settings.vram_total_gib),
               "--vram-idle-gib", str(self.settings.vram_idle_gib)]
        for m in models:
            cmd += ["--model", m]
        self.state_dir.mkdir(parents=True, exist_ok=True)  # its working folder: never the (installed) package
        return cmd + list(self.settings.comfyui_args), self.state_dir  # ComfyUI flags the stand-in imitates

    @property
    def fleet_urls(self) -> list[str]:
        return fleet.other_backends(self.profile)

    def _fleet_programs(self, main_command: list[str]) -> list[supervisor.Program]:
        try:
            return fleet.programs(self.profile, self.state_dir, main_command)
        except fleet.FleetError as exc:
            raise StackError(str(exc)) from None

    def stop_backend(self, url: str) -> None:
        """Take one of the fleet's other backends down (a fault for the self-tests); supervisord leaves it down."""
        try:
            fleet.stop(self.profile, url)
        except fleet.FleetError as exc:
            raise StackError(str(exc)) from None

    def down_processes(self, info: StackInfo) -> None:
        """Stop the processes `info` names that are still the ones this stack started; any other process now
        under one of its PIDs (after a reboot: the system's nginx, anything) is left alone and told."""
        for role, pid in (("proxy", info.proxy_pid), ("forge", info.forge_pid), ("supervisor", info.supervisor_pid)):
            if info.own(role, pid):
                # supervisord first stops its programs: give it the time to escalate to SIGKILL itself
                owned.stop(pid, role, timeout=2 * supervisor.STOP_WAIT_S + 5 if role == "supervisor" else 10)
            elif pid and owned.Started.now(pid) is not None:
                raw = info.processes.get(role)
                why = owned.Started.from_json(raw).differs() if raw and raw["pid"] == pid else \
                    "the state file has no record of the process it started"
                self.left_alone.append(f"pid {pid}, named as the stack's {role} in {self.state_file}, was left "
                                       f"alone: {why}")

    # --- Forge ------------------------------------------------------------------------------------
    def _spawn_forge(self) -> subprocess.Popen:
        host, port = _hostport(self.forge_url)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "forge.log", "ab") as out:
            return subprocess.Popen([sys.executable, "-m", "comfycheck.standin.forge", "--host", host,
                                     "--port", str(port), "--vram-total-gib", str(self.settings.forge_vram_total_gib)],
                                    stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.state_dir)

    def _wait_forge(self, proc: subprocess.Popen) -> None:
        log = self.state_dir / "forge.log"

        poll = httpx.Client(timeout=2)  # one client for the whole wait: each new one loads the trust store

        def ready() -> bool:
            if proc.poll() is not None:
                raise StackError(f"Forge stand-in exited with {proc.returncode}; see {log}:\n{_tail(log)}")
            try:
                return poll.get(f"{self.profile.forge_url}/internal/ping").status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, timeout=self.settings.startup_timeout_s, interval=0.1, fatal=(StackError,),
                       what=f"Forge stand-in at {self.profile.forge_url} answering /internal/ping")
        except DeadlineExceeded as exc:
            owned.stop(proc.pid, "Forge stand-in")
            raise StackError(f"{exc}; see {log}:\n{_tail(log)}") from None
        finally:
            poll.close()

    def stop_forge(self) -> None:
        """Take Forge down on purpose (a fault for the self-tests); it stays down until start_forge()."""
        info = self._read_state()
        self.forge_stopped_flag.touch()
        if info and info.own("forge", info.forge_pid):
            owned.stop(info.forge_pid, "Forge stand-in")

    def start_forge(self, info: StackInfo | None = None) -> StackInfo:
        info = info or self._read_state()
        if info is None:
            raise StackError("the embedded stack is not running")
        self.forge_stopped_flag.unlink(missing_ok=True)
        proc = self._spawn_forge()
        self._wait_forge(proc)
        info.forge_pid, info.forge_url = proc.pid, self.forge_url
        info.remember("forge", proc.pid)
        self._write_state(info)
        return info

    def down(self) -> bool:
        info = self._read_state()
        if info is None:
            return False
        self.down_processes(info)
        self.state_file.unlink(missing_ok=True)
        return True

    def _write_state(self, info: StackInfo) -> None:
        self.state_file.write_text(json.dumps(asdict(info), indent=1))

    # --- the reverse proxy ----------------------------------------------------------------------
    def proxy_faults(self) -> dict:
        try:
            return json.loads(self.proxy_faults_file.read_text())
        except (OSError, ValueError):
            return {}

    def set_proxy_faults(self, **faults) -> StackInfo:
        """Restart nginx with these faults (see PROXY_FAULTS); no arguments: a healthy proxy again. `auth`
        (Credentials' fields, as a dict) makes it ask for other credentials than the profile's."""
        unknown = sorted(set(faults) - set(PROXY_FAULTS) - {"auth"})
        if unknown:
            raise StackError(f"unknown proxy fault(s) {unknown}; known: {sorted(PROXY_FAULTS)}")
        info = self._read_state()
        if info is None or not self.profile.public:
            raise StackError("proxy faults need a running embedded stack with a [public] proxy")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.proxy_faults_file.write_text(json.dumps(faults))
        if info.own("proxy", info.proxy_pid):
            NginxProxy.stop(info.proxy_pid)
        info = self._start_proxy(info)
        self._write_state(info)
        return info

    def _proxy_asks_otherwise(self) -> bool:
        """The running proxy asks for other credentials than this profile's (none of a self-test's faults on)."""
        if self.proxy_faults() or self.profile.public is None:
            return False
        try:
            running = self.proxy_auth_file.read_text()
        except OSError:
            running = Credentials().fingerprint()
        return running != self.profile.public.credentials.fingerprint()

    def _start_proxy(self, info: StackInfo) -> StackInfo:
        pub = self.profile.public
        assert pub is not None, "the stack starts a proxy only for a profile with [public]"
        faults = self.proxy_faults()
        auth = Credentials(**faults.pop("auth")) if "auth" in faults else pub.credentials
        if auth.missing():
            raise ProxyError(f"it cannot ask for the profile's credentials: {auth.missing()}")
        https_port, http_port = ports_of(pub.url, pub.http_url)
        files = certs.mint(PKI_DIR, self.state_dir / "tls", [pub.host, "127.0.0.1"], faults.get("cert"))
        cfg = ProxyConfig(backend=self.profile.comfyui.url, fleet=self.fleet_urls, https_port=https_port,
                          http_port=http_port, upload_limit_mib=int(pub.upload_limit_mib),
                          cors_origins=pub.cors_origins,
                          hsts_max_age_s=max(31536000, int(self.profile.targets["hsts_max_age_s"].threshold)),
                          faults=faults, auth=auth,
                          prompts_per_min=0 if faults.get("rate_limit_off") else
                          float(faults.get("rate_limit_per_min", pub.rate_limit_per_min)))
        try:
            self.proxy.write_config(cfg, files)
        except ProxyAuthError as exc:
            raise ProxyError(str(exc)) from None
        info.proxy_pid = self.proxy.start([p for p in (https_port, http_port) if p])
        info.remember("proxy", info.proxy_pid)
        self.proxy_auth_file.write_text(Credentials().fingerprint() if faults.get("auth_off") else auth.fingerprint())
        info.public_url = pub.url
        self._write_state(info)
        return info


def _nvml_sees_a_gpu() -> bool:
    from ..probes.gpu import load_nvml
    try:
        return load_nvml().nvmlDeviceGetCount() > 0
    except Exception:  # noqa: BLE001 - no NVML, no driver, no device: real ComfyUI runs with --cpu
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
