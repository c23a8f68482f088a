"""The credentials of each public.auth mode: read from the environment, sent the way the mode sends them, masked
everywhere they could be printed, and a profile that lacks a mode's keys refused with the keys named."""
from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from comfycheck.config.auth import MASK, Credentials, from_environment
from comfycheck.config.profile import ProfileError, load_profile
from comfycheck.judge.auth import Answer
from comfycheck.stack.proxy_access import ProxyAuthError, render_auth

pytestmark = pytest.mark.selftest
SECRET = "unit-secret-1b2c3d"


def test_each_mode_is_sent_the_way_its_proxy_reads_it(monkeypatch):
    monkeypatch.setenv("U_TOKEN", SECRET)
    monkeypatch.setenv("U_USER", "ada")
    bearer = from_environment("bearer", token_env="U_TOKEN")
    assert bearer.headers() == {"Authorization": f"Bearer {SECRET}"} and not bearer.params()
    basic = from_environment("basic", user_env="U_USER", password_env="U_TOKEN")
    assert basic.headers() == {"Authorization": "Basic " + base64.b64encode(f"ada:{SECRET}".encode()).decode()}
    cookie = from_environment("cookie", cookie_name="portal", cookie_env="U_TOKEN")
    assert cookie.cookies() == {"portal": SECRET} and not cookie.headers()
    assert cookie.browser_cookies("https://gpu.example.org:8443/x") == [
        {"name": "portal", "value": SECRET, "url": "https://gpu.example.org:8443/"}]
    query = from_environment("query", token_env="U_TOKEN", query_param="token")
    assert query.with_token("wss://h/ws?clientId=1") == f"wss://h/ws?clientId=1&token={SECRET}"
    assert basic.browser_context()["http_credentials"] == {"username": "ada", "password": SECRET, "send": "always"}
    assert 'public.auth = "bearer"' in (bearer.browser_refusal() or "")
    assert all(c.browser_refusal() is None for c in (basic, cookie, query))


def test_secrets_never_show_in_what_the_credentials_say(monkeypatch):
    monkeypatch.setenv("U_TOKEN", SECRET)
    monkeypatch.setenv("U_USER", "ada")
    basic = from_environment("basic", user_env="U_USER", password_env="U_TOKEN")
    query = from_environment("query", token_env="U_TOKEN")
    for creds in (basic, query):
        assert SECRET not in repr(creds) + creds.describe() + str(creds.missing())
    wire = base64.b64encode(f"ada:{SECRET}".encode()).decode()
    assert basic.mask(f"pw {SECRET} header Basic {wire}") == "pw *** header Basic ***"
    assert query.mask(query.with_token("https://h/prompt")) == "https://h/prompt?token=***"
    assert query.wrong().secret != SECRET and query.wrong().mode == "query"


def test_a_secret_is_masked_however_a_url_or_a_message_spells_it(monkeypatch):
    token = "s3cr+t/x=y&z"  # each of +, /, = and & changes when a URL carries it
    monkeypatch.setenv("U_TOKEN", token)
    query = from_environment("query", token_env="U_TOKEN")
    url = query.with_token("https://h/ws?clientId=1")
    assert token not in url, url
    for text in (url, f"GET {quote(token, safe='')}", f'{{"token": {json.dumps(token)}}}', f"raw {token}"):
        masked = query.mask(text)
        assert all(form not in masked for form in (token, quote(token, safe=""), quote_plus(token))), masked
        assert MASK in masked, masked


def test_a_missing_variable_is_named_with_the_mode(monkeypatch):
    monkeypatch.delenv("U_NOT_SET", raising=False)
    creds = from_environment("cookie", cookie_name="portal", cookie_env="U_NOT_SET")
    assert creds.missing() == 'public.auth = "cookie" (value $U_NOT_SET, cookie \'portal\'): $U_NOT_SET is not set'
    assert Credentials().missing() is None


@pytest.mark.parametrize("keys, needs", [
    ({"auth": "basic", "user_env": "U"}, "public.password_env"),
    ({"auth": "cookie", "cookie_env": "C"}, "public.cookie_name"),
    ({"auth": "query"}, "public.token_env"),
    ({"auth": "bearer"}, "public.token_env"),
])
def test_a_profile_without_the_keys_of_its_mode_is_refused(tmp_path, keys, needs):
    path = tmp_path / "p.toml"
    lines = "".join(f'{k} = "{v}"\n' for k, v in keys.items())
    path.write_text(f'name = "p"\n[comfyui]\nurl = "http://127.0.0.1:1"\n[public]\nurl = "https://h.example"\n{lines}')
    with pytest.raises(ProfileError, match=rf'profile {path}: public.auth = "{keys["auth"]}" needs .*{needs}'):
        load_profile(path)


def test_an_unknown_mode_is_refused(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\n[comfyui]\nurl = "http://127.0.0.1:1"\n[public]\nurl = "https://h.example"\n'
                    'auth = "kerberos"\n')
    with pytest.raises(ProfileError, match=r"public.auth"):
        load_profile(path)


def test_a_refusal_is_401_403_or_a_redirect_to_a_login_page():
    assert Answer(401).refused and Answer(403).refused and Answer(302, "https://sso/login").refused
    assert not Answer(200).refused and not Answer(None).refused and not Answer(302).refused


def test_the_embedded_proxy_refuses_what_it_cannot_write_safely(tmp_path):
    with pytest.raises(ProxyAuthError, match="bearer token"):
        render_auth(Credentials("bearer", 'bad"value'), tmp_path / "htpasswd")
    _, lines = render_auth(Credentials("basic", SECRET, "ada"), tmp_path / "htpasswd")
    stored = (tmp_path / "htpasswd").read_text()
    assert "auth_basic_user_file" in lines and stored.startswith("ada:{SSHA}") and SECRET not in stored
