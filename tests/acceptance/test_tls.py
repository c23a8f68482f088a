"""Certificate checklist: the public address presents a trusted, well-formed, current certificate over modern TLS."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from comfycheck.probes import tls

pytestmark = [pytest.mark.acceptance, pytest.mark.smoke]


@pytest.fixture(scope="module")
def public(profile, deployment):
    if profile.public is None:
        pytest.skip(f"profile {profile.name!r} has no [public] table: no certificate to check")
    return profile.public


@pytest.fixture(scope="module")
def presented(profile, public) -> tls.Presented:
    try:
        return tls.public_chain(public.url, timeout=profile.comfyui.timeout_s)
    except tls.TLSProbeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def roots(public):
    try:
        return tls.trust_store(public.ca_bundle)
    except tls.TLSProbeError as exc:
        pytest.fail(f"{exc} (public.ca_bundle in the profile)", pytrace=False)


@pytest.mark.foundation("public_tls")
def test_public_address_answers_tls(public, presented, measure):
    measure.info("TLS handshake with", f"{public.host}:{public.port}", certificates_sent=len(presented.chain))


@pytest.mark.foundation("certificate")
def test_certificate_chain_verifies_to_trust_store(public, presented, roots, measure):
    certs, where = roots
    built, problem = tls.chain_problem(public.url, presented, certs, where)
    if problem:
        pytest.fail(problem, pytrace=False)
    measure.info("chain", " <- ".join(tls.describe(c) for c in built), trust_store=where)
    incomplete = tls.anchored_below_a_root(built, presented.chain)
    assert not incomplete, f"{public.url}: {incomplete} (trust store {where})"


@pytest.mark.needs("certificate")  # a name mismatch is the chain check's failure first
def test_hostname_matches_certificate(public, presented, measure):
    names = tls.san_names(presented.chain[0])
    measure.info("certificate names (SAN)", ", ".join(names) or "(none)")
    assert names, f"the certificate of {public.url} has no subjectAltName; clients ignore the CN"
    assert tls.hostname_matches(public.host, names), (
        f"the certificate of {public.url} is for {', '.join(names)}, not for {public.host}")


@pytest.mark.needs("certificate")  # an expired certificate is the chain check's failure first
def test_certificate_renewal_point_not_passed(profile, presented, measure):
    now = dt.datetime.now(dt.UTC)
    earliest = min(presented.chain, key=lambda c: c.not_valid_after_utc)
    assert earliest.not_valid_before_utc <= now, (
        f"{tls.describe(earliest)} is not valid yet: valid from {earliest.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
        "(a clock problem on the server, or a certificate issued for the future)")
    lifetime = tls.lifetime_days(earliest)
    target = profile.targets["cert_days_left"]
    rule = "targets.cert_days_left in the profile"
    if target.rule:  # no threshold in the profile: the renewal point
        rule = f"renewal point: a third of its {lifetime:.0f}-day lifetime"
        target = target.with_threshold(round(lifetime / 3, 1), rule=rule)
    expires = f"{tls.describe(earliest)} expires {earliest.not_valid_after_utc:%Y-%m-%d}"
    measure.against(target, round(tls.days_left(earliest, now), 1), certificate=expires, rule=rule,
                    fix=f"{expires} ({rule}): renew it (certbot renew; win-acme on IIS) and check that renewal "
                        "is scheduled")


def test_keys_and_signatures_are_strong(presented, measure):
    weak = []
    for cert in presented.chain:
        algo, bits, strong = tls.key_description(cert)
        measure.info(f"key of {tls.describe(cert)}", f"{algo} {bits} bit")
        if not strong:
            weak.append(f"{tls.describe(cert)} has a weak key ({algo} {bits} bit; need RSA >= 2048 or EC >= 256)")
        if tls.sha1_signed(cert):
            weak.append(f"{tls.describe(cert)} is signed with SHA-1")
    assert not weak, "; ".join(weak)


def test_modern_tls_negotiated(presented, measure):
    measure.info("TLS protocol", presented.protocol, cipher=presented.cipher)
    assert presented.protocol in ("TLSv1.2", "TLSv1.3"), f"negotiated {presented.protocol}, expected TLS 1.2 or 1.3"


@pytest.mark.needs("public_tls")
def test_legacy_tls_refused(public, measure):
    accepted, untested = [], []
    for version in ("TLSv1", "TLSv1.1"):
        cannot = tls.client_cannot_offer(version)
        if cannot:
            measure.info(f"{version} handshake", "not tested", why=f"this host cannot offer it ({cannot})")
            untested.append(version)
            continue
        try:
            offered = tls.offers_protocol(public.host, public.port, version)
        except tls.TLSProbeError as exc:
            pytest.fail(f"{public.url}: {exc}", pytrace=False)
        measure.info(f"{version} handshake", "accepted" if offered else "refused")
        accepted += [version] if offered else []
    assert not accepted, f"{public.url} accepts {' and '.join(accepted)}: disable TLS 1.0 and 1.1 on the proxy"
    if untested:
        pytest.skip(f"not tested: this host's TLS library cannot offer {' or '.join(untested)} "
                    f"({tls.client_cannot_offer(untested[0])}), so whether {public.url} refuses them cannot be "
                    "seen from here; run this check from a client that can offer them")


def test_hsts_header_present(public, public_comfy, measure):
    resp = public_comfy.request("GET", "/system_stats")
    hsts = resp.headers.get("strict-transport-security")
    assert hsts, f"{public.url} sends no Strict-Transport-Security header"
    match = re.search(r"max-age=\"?(\d+)", hsts, re.I)
    assert match, f"Strict-Transport-Security without max-age: {hsts!r}"
    measure("hsts_max_age_s", int(match.group(1)), header=hsts,
            fix="raise max-age in the proxy's Strict-Transport-Security header")


def test_chain_sent_leaf_first_in_order(presented, measure):
    measure.info("certificates sent", len(presented.chain))
    problems = tls.order_problems(presented.chain)
    assert not problems, "the chain is not sent leaf first, each followed by its issuer: " + "; ".join(problems)
