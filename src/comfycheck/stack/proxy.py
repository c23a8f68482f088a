"""The embedded stack's reverse proxy: Debian's nginx, in the foreground, with a generated config.

It publishes the stand-in ComfyUI the way the reference deployment's IIS ARR does: TLS with the stack's own CA,
HTTP -> HTTPS redirect, WebSocket upgrades passed, the original Host kept, X-Forwarded-* set, 100 MiB uploads,
CORS for the profile's origins and HSTS. Proxy faults produce the misconfigurations users hit in real life.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from .. import ComfycheckError
from ..config.auth import Credentials
from ..polling import DeadlineExceeded, wait_until
from .certs import CERT_FAULTS, CertFiles
from .proxy_access import render_auth, write_private
from .proxy_refusals import render_refusals

# name -> what it does; each one breaks exactly one thing a proxy/TLS test checks
PROXY_FAULTS = {
    "ws_upgrade_blocked": "the Upgrade/Connection headers are not passed to the backend",
    "host_rewritten": "Host is rewritten to the backend's address (nginx's default $proxy_host)",
    "upload_limit_mib": "client_max_body_size set to this many MiB (nginx's m)",
    "no_https_redirect": "plain HTTP is served instead of redirected to HTTPS",
    "legacy_tls": "TLS 1.0 and 1.1 are enabled",
    "no_hsts": "no Strict-Transport-Security header",
    "auth_off": "no authentication asked, whatever the profile's public.auth requires",
    "ws_auth_off": "the WebSocket (/ws) has a location of its own that asks for no authentication",
    "portal_redirect": "a sign-in portal: a request without the session is redirected to /login (302), not 401",
    "auth_api_open": "the /api/ spelling of every route has a location of its own that asks for no authentication",
    "rate_limit_bare_only": "the per-user limit is on POST /prompt and not on its /api/prompt spelling",
    "priority_strip": "with refuse priority: only these fields (number, front) are dropped from POST /prompt",
    "rate_limit_per_min": "POST /prompt limited to this many per user and minute (else public.rate_limit_per_min)",
    "rate_limit_off": "no rate limit, whatever public.rate_limit_per_min asks",
    "refuse": "the secure configuration: these operations on everyone (comfy.operations keys) are refused",
    "cert": f"the server certificate is broken: one of {', '.join(CERT_FAULTS)}",
    "read_timeout_s": "proxy_read_timeout set to this many seconds (nginx's default is 60 s)",
    "no_affinity": "a fleet balanced request by request (least_conn alone): a student's socket and submits part",
}


class ProxyError(ComfycheckError):
    pass


@dataclass
class ProxyConfig:
    backend: str  # http://127.0.0.1:28188
    https_port: int
    http_port: int | None
    upload_limit_mib: int = 100
    cors_origins: list[str] = field(default_factory=list)
    hsts_max_age_s: int = 31536000
    faults: dict = field(default_factory=dict)
    fleet: list[str] = field(default_factory=list)  # more backends: nginx balances them all (least_conn, affinity)
    auth: Credentials = field(default_factory=Credentials)  # what every request must carry (public.auth)
    prompts_per_min: float = 0  # POST /prompt per user and minute (public.rate_limit_per_min); 0: no limit


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)
    if not found:
        raise ProxyError("nginx is not installed: run `./run setup` (installs Debian's nginx-light)")
    return found


def render(cfg: ProxyConfig, certs: CertFiles, prefix: Path) -> str:
    f = cfg.faults
    limit = f.get("upload_limit_mib", cfg.upload_limit_mib)
    protocols = "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3" if f.get("legacy_tls") else "TLSv1.2 TLSv1.3"
    # OpenSSL 3 refuses TLS 1.0/1.1 above security level 0; the fault has to lower it to really offer them
    ciphers = "DEFAULT:@SECLEVEL=0" if f.get("legacy_tls") else (
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
    host_header = "$proxy_host" if f.get("host_rewritten") else "$http_host"
    upgrade = "" if f.get("ws_upgrade_blocked") else (
        "proxy_set_header Upgrade $http_upgrade;\n            proxy_set_header Connection $connection_upgrade;")
    hsts = "" if f.get("no_hsts") else (
        f'add_header Strict-Transport-Security "max-age={cfg.hsts_max_age_s}" always;')
    auth_maps, auth = render_auth(Credentials() if f.get("auth_off") else cfg.auth, prefix / "htpasswd")
    login = ""
    if f.get("portal_redirect"):  # a sign-in portal: no session, sent to its login page (the WebSocket upgrade too)
        auth = auth.replace("return 401;", "return 302 /login?next=$request_uri;")
        login = """
        location = /login {
            default_type text/html; return 200 "<!doctype html><title>Sign in</title><form></form>";
        }"""
    cors_map = "\n".join(f'        "{o}" $http_origin;' for o in cfg.cors_origins)
    read_timeout = f"{int(f['read_timeout_s'])}s" if f.get("read_timeout_s") else "3600s"
    fleet, balancer = _balancer(cfg)

    def proxied(to: str, extra: str = "") -> str:
        return f"""
            proxy_pass {to};{extra}
            proxy_http_version 1.1;
            {upgrade}
            proxy_set_header Host {host_header};
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_read_timeout {read_timeout};
            proxy_send_timeout 3600s;
            proxy_request_buffering off;"""

    if cfg.fleet and f.get("no_affinity"):
        to_backend = proxied("http://comfyui_fleet")
    elif cfg.fleet:
        to_backend = proxied("$fleet_member", fleet + "\n            error_page 502 = @fleet;")
    else:
        to_backend = proxied(cfg.backend)
    # a student whose backend went down goes to the others, with a new affinity cookie
    fallback = f"""
        location @fleet {{{proxied("http://comfyui_fleet", fleet)}
        }}""" if cfg.fleet else ""
    # an operator's separate WebSocket location that forgot the auth lines the page's location has
    ws_open = f"""
        location ~ ^/(api/)?ws$ {{{to_backend}
        }}""" if f.get("ws_auth_off") else ""
    # an operator's rule for the API written for one spelling, the other forgotten: /api/... reaches ComfyUI openly
    ws_open += f"""
        location ^~ /api/ {{{to_backend}
        }}""" if f.get("auth_api_open") else ""
    if cfg.http_port is None:
        plain = ""
    elif f.get("no_https_redirect"):
        plain = f"""
    server {{
        listen 127.0.0.1:{cfg.http_port};
        server_name _;
        client_max_body_size {limit}m;
        location / {{{to_backend}
        }}{fallback}
    }}"""
    else:
        https_suffix = "" if cfg.https_port == 443 else f":{cfg.https_port}"
        plain = f"""
    server {{
        listen 127.0.0.1:{cfg.http_port};
        server_name _;
        location / {{ return 301 https://$host{https_suffix}$request_uri; }}
    }}"""
    page = f"""
            {hsts}
            add_header Access-Control-Allow-Origin $cors_origin always;
            add_header Vary Origin always;
            if ($request_method = OPTIONS) {{
                add_header Access-Control-Allow-Origin $cors_origin always;
                add_header Access-Control-Allow-Methods "GET, POST, DELETE, OPTIONS" always;
                add_header Access-Control-Allow-Headers "Content-Type, Authorization, Comfy-User" always;
                add_header Access-Control-Max-Age 600 always;
                add_header Vary Origin always;
                {hsts}
                return 204;
            }}
            {auth}{to_backend}"""
    main_lines, http_lines, refusal_locations = render_refusals(
        set(f.get("refuse", ())), prefix, page, cfg.prompts_per_min, strip_fields=f.get("priority_strip"),
        limit_bare_only=bool(f.get("rate_limit_bare_only")))
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    return f"""# generated by comfycheck's embedded stack; rewritten on every start
{user}
{main_lines}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_rlimit_nofile 8192;
events {{ worker_connections 4096; }}  # a class of 200 holds a page WebSocket and a connection each, both ways
http {{
    # the path without its query: a query token (public.auth = "query") stays out of the log
    log_format no_query '$remote_addr [$time_local] "$request_method $uri $server_protocol" $status $body_bytes_sent';
    access_log {prefix}/access.log no_query;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server_tokens off;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        "" close;
    }}
    map $http_origin $cors_origin {{
        default "";
{cors_map}
    }}{auth_maps}{http_lines}{balancer}{plain}
    server {{
        listen 127.0.0.1:{cfg.https_port} ssl;
        server_name _;
        ssl_certificate {certs.chain};
        ssl_certificate_key {certs.key};
        ssl_protocols {protocols};
        ssl_ciphers {ciphers};
        ssl_session_cache shared:tls:1m;
        client_max_body_size {limit}m;
        {refusal_locations}{login}
        location / {{{page}
        }}{ws_open}{fallback}
    }}
}}
"""


AFFINITY_COOKIE = "comfycheck_backend"


def _balancer(cfg: ProxyConfig) -> tuple[str, str]:
    """For a fleet: the location's lines (the affinity cookie; a backend that is down hands its students to the
    others) and the http block's upstream and maps. A student's page, socket and submits must reach one backend,
    as IIS ARR's client affinity keeps them: ComfyUI tells a prompt's progress only to the socket on its own
    server. The first request goes to the least busy backend (least_conn) and is told its name in a cookie."""
    if not cfg.fleet:
        return "", ""
    members = [urlsplit(u).netloc for u in [cfg.backend, *cfg.fleet]]
    servers = "".join(f"\n        server {m};" for m in members)
    routes = "".join(f'\n        "{m}" http://{m};' for m in members)
    lines = f"""
            add_header Set-Cookie "{AFFINITY_COOKIE}=$fleet_chosen; Path=/; HttpOnly; Secure; SameSite=Lax" always;"""
    block = f"""
    upstream comfyui_fleet {{
        least_conn;{servers}
    }}
    map $cookie_{AFFINITY_COOKIE} $fleet_member {{
        default http://comfyui_fleet;{routes}
    }}
    map $upstream_addr $fleet_chosen {{
        "~(?<last>[^ ,]+)$" $last;
        default "";
    }}"""
    return lines, block




class NginxProxy:
    def __init__(self, directory: Path):
        self.dir = directory
        self.conf = directory / "nginx.conf"
        self.log = directory / "error.log"

    def write_config(self, cfg: ProxyConfig, certs: CertFiles) -> None:
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        write_private(self.conf, render(cfg, certs, self.dir))  # it holds the bearer, cookie or query secret
        check = subprocess.run([nginx_binary(), "-t", "-q", "-p", str(self.dir), "-c", str(self.conf),
                                "-e", str(self.log)], capture_output=True, text=True)
        if check.returncode != 0:
            raise ProxyError(f"nginx rejects the generated config {self.conf}:\n{check.stderr.strip()}")

    def start(self, ports: list[int], timeout: float = 10.0) -> int:
        with open(self.dir / "nginx.out", "ab") as out:
            proc = subprocess.Popen([nginx_binary(), "-p", str(self.dir), "-c", str(self.conf), "-e", str(self.log)],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)

        def listening() -> bool:
            if proc.poll() is not None:
                raise ProxyError(f"nginx exited with {proc.returncode}; see {self.log}:\n{_tail(self.log)}")
            bound = {c.laddr.port for c in psutil.Process(proc.pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN}
            return all(p in bound for p in ports)

        try:
            wait_until(listening, timeout=timeout, interval=0.02, what=f"nginx listening on {ports}",
                       fatal=(ProxyError,))
        except DeadlineExceeded as exc:
            self.stop(proc.pid)
            raise ProxyError(f"{exc}; see {self.log}:\n{_tail(self.log)}") from None
        return proc.pid

    @staticmethod
    def alive(pid: int) -> bool:
        try:
            p = psutil.Process(pid)
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE and "nginx" in p.name()
        except psutil.Error:
            return False

    @classmethod
    def stop(cls, pid: int) -> None:
        if not cls.alive(pid):
            return
        try:
            os.killpg(pid, signal.SIGTERM)  # nginx's fast shutdown; workers go with the master's group
        except ProcessLookupError:
            return
        try:
            wait_until(lambda: not cls.alive(pid), timeout=10, interval=0.02, what=f"nginx (pid {pid}) stopping")
        except DeadlineExceeded:
            os.killpg(pid, signal.SIGKILL)


def ports_of(public_url: str, http_url: str | None) -> tuple[int, int | None]:
    https = urlsplit(public_url).port or 443
    http = (urlsplit(http_url).port or 80) if http_url else None
    return https, http


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
