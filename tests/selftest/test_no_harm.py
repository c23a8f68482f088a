"""Harm a test suite must never do to the host it runs on or the deployment it tests."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import asdict

import pytest

from comfycheck.config.auth import Credentials
from comfycheck.config.paths import PKI_DIR
from comfycheck.config.profile import load_profile
from comfycheck.polling import wait_until
from comfycheck.stack import EmbeddedStack, StackInfo, certs
from comfycheck.stack.__main__ import main as stack_cli
from comfycheck.stack.owned import Started
from comfycheck.stack.proxy import NginxProxy, ProxyConfig, nginx_binary
from tests.selftest.helpers import free_port, own_ports

pytestmark = pytest.mark.selftest


@pytest.fixture
def foreign_nginx(tmp_path):
    """Someone else's nginx (the system's, started at boot), listening on a port of its own; stopped after."""
    port = own_ports()["public"]["url"].rsplit(":", 1)[1]
    conf = tmp_path / "foreign" / "nginx.conf"
    conf.parent.mkdir()
    conf.write_text(f"daemon off; pid {conf.parent}/nginx.pid; error_log {conf.parent}/error.log;\n"
                    f"events {{}}\nhttp {{ access_log off; server {{ listen 127.0.0.1:{port}; return 204; }} }}\n")
    proc = subprocess.Popen([nginx_binary(), "-p", str(conf.parent), "-c", str(conf)], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: (conf.parent / "nginx.pid").exists(), timeout=10, interval=0.02, what="the foreign nginx")
    yield proc, int(port)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.parametrize("record", ["none", "reused"], ids=["older state file", "pid reused since"])
def test_stack_up_never_stops_a_process_it_did_not_start(make_profile, foreign_nginx, record, capsys):
    """After a reboot a stale state file's proxy PID is the system's nginx: `stack up` must leave it running."""
    nginx, port = foreign_nginx
    ports = own_ports()
    ports["public"].update(url=f"https://localhost:{port}", cors_origins=[f"https://localhost:{port}"])
    ports["forge"] = None  # no Forge: the session's own runs on the profile's port (None drops the table)
    path = make_profile(ports)
    stack = EmbeddedStack(load_profile(path))
    stale = StackInfo("", "", 0, 0.0, 0.0, "", proxy_pid=nginx.pid)
    if record == "reused":  # the stack's own nginx had this PID, started at another time
        was = Started.now(nginx.pid)
        assert was is not None
        stale.processes["proxy"] = Started(was.pid, was.started - 60, ("nginx", "-p", "/elsewhere")).to_json()
    stack.state_dir.mkdir(parents=True, exist_ok=True)
    stack.state_file.write_text(json.dumps(asdict(stale)))
    try:
        assert stack_cli(["up", "--profile", str(path)]) == 2
    finally:
        stack.down()
    err = capsys.readouterr().err
    assert nginx.poll() is None, f"stack up stopped the foreign nginx (pid {nginx.pid}):\n{err}"
    assert f"https://localhost:{port} is already in use by another program" in err, err
    assert f"pid {nginx.pid}, named as the stack's proxy in {stack.state_file}, was left alone" in err, err


def test_a_process_is_its_own_only_with_the_same_start_time_and_command_line():
    me = Started.now(os.getpid())
    assert me is not None and me.running
    assert "started at" in (Started(me.pid, me.started - 1, me.cmdline).differs() or "")
    assert "another process now" in (Started(me.pid, me.started, ("nginx", "-p", "/elsewhere")).differs() or "")
    assert Started(2 ** 22 + 1, me.started, me.cmdline).differs() == "no longer running"


@pytest.mark.parametrize("mode", ["bearer", "cookie", "query"])
def test_the_embedded_proxys_config_holding_a_secret_is_readable_by_its_owner_only(tmp_path, mode):
    proxy = NginxProxy(tmp_path / "nginx")
    proxy.conf.parent.mkdir()
    proxy.conf.write_text("# an older config, written with the default rights\n")
    secret = "harm-selftest-4f9a"
    creds = Credentials(mode, secret, name="session" if mode == "cookie" else "token")
    proxy.write_config(ProxyConfig(backend="http://127.0.0.1:9", https_port=free_port(), http_port=None, auth=creds),
                       certs.mint(PKI_DIR, tmp_path / "tls", ["localhost"]))
    assert secret in proxy.conf.read_text(), "the check is moot: the config does not hold the secret"
    rights = stat.S_IMODE(proxy.conf.stat().st_mode)
    assert rights == 0o600, f"{proxy.conf} is {oct(rights)}: other users of this host can read the {mode} secret"
