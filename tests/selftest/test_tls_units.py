"""Unit tests of the proxy/TLS layer: certificate checks on minted certificates, profile keys, nginx configs."""
from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from comfycheck.config.paths import DEFAULT_PROFILE, PROJECT_ROOT
from comfycheck.config.profile import ProfileError, load_profile
from comfycheck.config.settings import EXPOSURE_OPERATIONS
from comfycheck.probes import tls
from comfycheck.stack import certs
from comfycheck.stack.proxy import PROXY_FAULTS, NginxProxy, ProxyConfig, nginx_binary


@pytest.mark.parametrize("host, names, ok", [
    ("comfy.example.com", ["comfy.example.com"], True),
    ("COMFY.example.com", ["comfy.example.com."], True),
    ("comfy.example.com", ["*.example.com"], True),
    ("a.b.example.com", ["*.example.com"], False),  # a wildcard covers one label only
    ("example.com", ["*.example.com"], False),
    ("comfy.example.com", ["c*.example.com"], False),  # partial wildcards are not honoured
    ("comfy.example.com", ["*.com"], False),
    ("comfy.example.com", ["other.example.com", "*.example.com"], True),
])
def test_hostname_matching_follows_rfc_6125(host, names, ok):
    assert tls.hostname_matches(host, names) is ok


@pytest.fixture(scope="module")
def minted(tmp_path_factory):
    base = tmp_path_factory.mktemp("pki")
    files = certs.mint(base / "pki", base / "out", ["comfy.test", "127.0.0.1"])
    chain = x509.load_pem_x509_certificates(files.chain.read_bytes())
    roots = x509.load_pem_x509_certificates(files.ca_bundle.read_bytes())
    return files, chain, roots


def test_minted_chain_is_what_real_verifiers_accept(minted):
    files, chain, roots = minted
    built = tls.verify_chain(chain, roots, "comfy.test")
    assert len(built) == 3 and tls.order_problems(chain) == []
    assert tls.verify_chain(chain, roots, "127.0.0.1")
    assert round(tls.lifetime_days(chain[0])) == 90 and tls.key_description(chain[0])[2]
    ssl_ok = subprocess.run(["openssl", "verify", "-CAfile", str(files.ca_bundle), "-untrusted", str(files.chain),
                             "-purpose", "sslserver", str(files.chain)], capture_output=True, text=True)
    assert ssl_ok.returncode == 0, ssl_ok.stdout + ssl_ok.stderr


def test_root_is_kept_between_mints(minted, tmp_path):
    files, _, _ = minted
    before = files.ca_bundle.read_bytes()
    certs.mint(files.ca_bundle.parent, tmp_path, ["comfy.test"])
    assert files.ca_bundle.read_bytes() == before


def test_reversed_chain_is_reported(minted):
    _, chain, _ = minted
    problems = tls.order_problems(list(reversed(chain)))
    assert problems and "is a CA certificate, not the server's" in problems[0]


def _self_signed(key, algorithm) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak.test")])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, algorithm))


def test_weak_keys_are_flagged():
    assert tls.key_description(_self_signed(rsa.generate_private_key(65537, 1024), hashes.SHA256())) == \
        ("RSA", 1024, False)
    assert tls.key_description(_self_signed(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))[2]
    assert tls.key_description(_self_signed(rsa.generate_private_key(65537, 2048), hashes.SHA256()))[2]


def test_untrusted_chain_is_explained(tmp_path):
    good = certs.mint(tmp_path / "pki", tmp_path / "good", ["comfy.test"])
    rogue = certs.mint(tmp_path / "pki", tmp_path / "rogue", ["comfy.test"], "untrusted")
    roots = x509.load_pem_x509_certificates(good.ca_bundle.read_bytes())
    chain = x509.load_pem_x509_certificates(rogue.chain.read_bytes())
    with pytest.raises(tls.VerificationError, match="names a trusted root as issuer, but that root did not sign it"):
        tls.verify_chain(chain, roots, "comfy.test")
    stranger = _self_signed(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    with pytest.raises(tls.VerificationError, match="ending at the CA CN=comfycheck Intermediate E1.*which is not "
                                                    "in the trust store: an untrusted or private root"):
        tls.verify_chain(chain, [stranger], "comfy.test")


def test_missing_intermediate_is_told_apart_from_an_untrusted_root(tmp_path):
    good = certs.mint(tmp_path / "pki", tmp_path / "good", ["comfy.test"], "leaf_only")
    roots = x509.load_pem_x509_certificates(good.ca_bundle.read_bytes())
    chain = x509.load_pem_x509_certificates(good.chain.read_bytes())
    assert len(chain) == 1
    with pytest.raises(tls.VerificationError, match="the server sends 1 certificate; the issuer CN=comfycheck "
                                                    "Intermediate E1.* is missing from what it sends.*full chain"):
        tls.verify_chain(chain, roots, "comfy.test")
    inter = x509.load_pem_x509_certificate((tmp_path / "pki" / "intermediate.pem").read_bytes())
    built = tls.verify_chain(chain, roots + [inter], "comfy.test")  # a CA bundle holding the intermediate
    assert "the chain verifies only because the trust store holds CN=comfycheck Intermediate E1" in \
        (tls.anchored_below_a_root(built, chain) or "")
    full = certs.mint(tmp_path / "pki", tmp_path / "full", ["comfy.test"])
    presented = x509.load_pem_x509_certificates(full.chain.read_bytes())
    assert tls.anchored_below_a_root(tls.verify_chain(presented, roots, "comfy.test"), presented) is None


def test_wrong_host_is_explained_with_the_names(tmp_path):
    other = certs.mint(tmp_path / "pki", tmp_path / "o", ["comfy.test"], "wrong_host")
    roots = x509.load_pem_x509_certificates(other.ca_bundle.read_bytes())
    with pytest.raises(tls.VerificationError, match="the certificate is for comfycheck-other-host.example.net, "
                                                    "not for comfy.test"):
        tls.verify_chain(x509.load_pem_x509_certificates(other.chain.read_bytes()), roots, "comfy.test")


def test_public_table_defaults_and_paths(make_profile):
    p = load_profile()
    assert p.public and p.public.http_url == "http://localhost:28080" and p.public.origin == "https://localhost:28443"
    assert p.ca_bundle == PROJECT_ROOT / ".comfycheck" / "pki" / "ca.pem"
    prod = load_profile(DEFAULT_PROFILE.with_name("production.example.toml"))
    assert prod.public and prod.public.http_url == "http://qwen-image-edit.myia.io" and prod.ca_bundle is None
    none = load_profile(make_profile({"public": {"http_url": ""}}))
    assert none.public and none.public.http_url is None


def test_embedded_public_url_must_be_loopback(make_profile):
    with pytest.raises(ProfileError, match="public.url: the embedded stack runs on loopback only"):
        load_profile(make_profile({"public": {"url": "https://comfy.example.com"}}))


@pytest.mark.parametrize("fleet", [[], ["http://127.0.0.1:10"]], ids=["one-backend", "fleet"])
@pytest.mark.parametrize("fault", sorted(PROXY_FAULTS))
def test_every_proxy_fault_renders_a_config_nginx_accepts(fault, fleet, tmp_path):
    nginx_binary()
    files = certs.mint(tmp_path / "pki", tmp_path / "tls", ["localhost"])
    value = {"upload_limit_mib": 30, "cert": "expired", "refuse": list(EXPOSURE_OPERATIONS),
             "rate_limit_per_min": 30}.get(fault, True)
    cfg = ProxyConfig(backend="http://127.0.0.1:9", https_port=8443, http_port=8080,
                      cors_origins=["https://a.test"], faults={fault: value}, fleet=fleet)
    NginxProxy(tmp_path / "nginx").write_config(cfg, files)  # runs `nginx -t` on it
