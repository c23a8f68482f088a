"""What a TLS endpoint presents, and whether it holds up: chain, trust, names, validity, keys, protocols."""
from __future__ import annotations

import datetime as dt
import ipaddress
import select
import socket
import ssl
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from OpenSSL import SSL

from .. import ComfycheckError

SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem")
SHA1_OIDS = {SignatureAlgorithmOID.RSA_WITH_SHA1, SignatureAlgorithmOID.ECDSA_WITH_SHA1,
             SignatureAlgorithmOID.DSA_WITH_SHA1}


class TLSProbeError(ComfycheckError):
    """The endpoint could not be probed at all (refused, timed out, not TLS); the message names it."""


@dataclass
class Presented:
    """What the server sent in one handshake."""

    chain: list[x509.Certificate]  # as sent: the leaf should be first
    protocol: str  # e.g. "TLSv1.3"
    cipher: str


def fetch_chain(host: str, port: int, server_name: str | None = None, timeout: float = 10.0) -> Presented:
    """Handshake without verifying (we verify ourselves, to say *what* is wrong) and return the chain sent."""
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_verify(SSL.VERIFY_NONE, lambda *a: True)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise TLSProbeError(f"cannot connect to {host}:{port}: {exc}") from None
    conn = SSL.Connection(ctx, sock)
    conn.set_tlsext_host_name((server_name or host).encode("idna"))
    conn.set_connect_state()
    try:
        _handshake(conn, sock, time.monotonic() + timeout)
        chain = conn.get_peer_cert_chain(as_cryptography=True) or []
        return Presented(list(chain), conn.get_protocol_version_name(), conn.get_cipher_name() or "?")
    except (SSL.Error, OSError) as exc:
        raise TLSProbeError(f"TLS handshake with {host}:{port} failed: {exc!r}") from None
    finally:
        conn.close()
        sock.close()


def public_chain(url: str, timeout: float) -> Presented:
    """The chain an HTTPS address sends; TLSProbeError naming the address when it cannot be had."""
    parts = urlsplit(url)
    try:
        return fetch_chain(parts.hostname or "", parts.port or 443, timeout=timeout)
    except TLSProbeError as exc:
        raise TLSProbeError(f"{url}: {exc}") from None


def chain_problem(url: str, presented: Presented, roots: list[x509.Certificate],
                  where: str) -> tuple[list[x509.Certificate], str | None]:
    """The chain as a TLS client that trusts `roots` (from `where`) builds it for the address `url`, and why it
    does not verify (None: it does). The certificate check and its foundation both judge it here."""
    try:
        return verify_chain(presented.chain, roots, urlsplit(url).hostname or ""), None
    except VerificationError as exc:
        return [], f"the certificate chain of {url} does not verify against {where}: {exc}"


def _handshake(conn: SSL.Connection, sock: socket.socket, deadline: float) -> None:
    sock.setblocking(False)  # pyOpenSSL and socket timeouts do not mix: wait on select with a deadline
    while True:
        try:
            conn.do_handshake()
            return
        except SSL.WantReadError:
            wait: tuple[list, list, list] = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        except SSL.WantWriteError:
            wait = select.select([], [sock], [], max(0.0, deadline - time.monotonic()))
        if not any(wait):
            raise OSError("no TLS handshake answer before the deadline")


def trust_store(ca_bundle: Path | None) -> tuple[list[x509.Certificate], str]:
    """The roots to verify against: the profile's CA bundle, else the system trust store; and where from."""
    path: Path | None = Path(ca_bundle) if ca_bundle else None
    if path is None:
        default = ssl.get_default_verify_paths().cafile
        path = next((Path(p) for p in (default, *SYSTEM_BUNDLES) if p and Path(p).is_file()), None)
        if path is None:
            raise TLSProbeError("no system trust store found (looked for " + ", ".join(SYSTEM_BUNDLES) + ")")
    try:
        return x509.load_pem_x509_certificates(path.read_bytes()), str(path)
    except (OSError, ValueError) as exc:
        raise TLSProbeError(f"cannot read the CA bundle {path}: {exc}") from None


def describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def verify_chain(presented: list[x509.Certificate], roots: list[x509.Certificate], host: str,
                 when: dt.datetime | None = None) -> list[x509.Certificate]:
    """Verify as a TLS client would (RFC 5280 path, serverAuth, the host name); return the built chain.

    Raises VerificationError with a message that says which certificate is the problem.
    """
    if not presented:
        raise VerificationError("the server presented no certificate")
    builder = PolicyBuilder().store(Store(roots)).time(when or dt.datetime.now(dt.UTC))
    try:
        subject: x509.verification.Subject = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = x509.DNSName(host)
    verifier = builder.build_server_verifier(subject)
    try:
        return verifier.verify(presented[0], presented[1:])
    except VerificationError as exc:
        raise VerificationError(_explain(presented, roots, str(exc), host)) from None




FULL_CHAIN_FIX = ("configure the full chain on the proxy (the certificate followed by its intermediates: "
                  "Let's Encrypt's fullchain.pem, not cert.pem)")


def _explain(presented, roots, raw: str, host: str) -> str:
    now = dt.datetime.now(dt.UTC)
    for c in presented:
        if c.not_valid_after_utc < now:
            return f"{describe(c)} expired on {c.not_valid_after_utc:%Y-%m-%d} ({raw})"
        if c.not_valid_before_utc > now:
            return f"{describe(c)} is not valid before {c.not_valid_before_utc:%Y-%m-%d %H:%M} UTC ({raw})"
    names = san_names(presented[0])
    if not hostname_matches(host, names):
        return (f"the certificate is for {', '.join(names) or '(no subjectAltName)'}, not for {host}: issue one "
                f"that names {host} ({raw})")
    root_subjects = {r.subject for r in roots}
    top = presented[-1]
    sent = f"the server sends {len(presented)} certificate{'s' if len(presented) != 1 else ''}"
    if top.issuer == top.subject and top.subject not in root_subjects:
        return f"{sent}, ending at {describe(top)}, which is self-signed and not in the trust store ({raw})"
    if top.issuer not in root_subjects and top.subject not in root_subjects:
        issuer = top.issuer.rfc4514_string()
        if not is_ca(top):
            # A server certificate is issued by an intermediate (Let's Encrypt's always are), which the server
            # must send: nobody's trust store holds intermediates, so adding it to a CA bundle only hides this.
            return (f"{sent}; the issuer {issuer} of {describe(top)} is missing from what it sends and is not a "
                    f"trusted root: {FULL_CHAIN_FIX} ({raw})")
        return (f"{sent}, ending at the CA {describe(top)}, issued by {issuer}, which is not in the trust store: "
                f"an untrusted or private root (for a private CA, add its root to public.ca_bundle) ({raw})")
    if top.issuer in root_subjects and not any(_signed_by(top, r) for r in roots if r.subject == top.issuer):
        return (f"{describe(top)} names a trusted root as issuer, but that root did not sign it "
                f"(a look-alike CA, or the wrong intermediate): {raw}")
    return raw


def anchored_below_a_root(built: list[x509.Certificate], presented: list[x509.Certificate]) -> str | None:
    """Why a chain that verified will still fail elsewhere: the trust store supplied an intermediate the server
    does not send (a CA bundle that holds intermediates). None when the chain ends at a self-signed root."""
    anchor = built[-1]
    if anchor.issuer == anchor.subject or anchor in presented:
        return None
    return (f"the chain verifies only because the trust store holds {describe(anchor)}, an intermediate CA "
            f"(issued by {anchor.issuer.rfc4514_string()}) that the server does not send: clients that do not "
            f"hold it (browsers elsewhere, curl, Python) fail; {FULL_CHAIN_FIX}")


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not issued by this one"
        return False


def san_names(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    assert isinstance(ext, x509.SubjectAlternativeName)
    return ext.get_values_for_type(x509.DNSName) + [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]


def hostname_matches(host: str, names: list[str]) -> bool:
    """RFC 6125: exact match, or a wildcard in the whole left-most label covering exactly one label."""
    host = host.lower().rstrip(".")
    for name in names:
        name = name.lower().rstrip(".")
        if name == host:
            return True
        if name.startswith("*.") and "*" not in name[2:]:
            head, _, rest = host.partition(".")
            if head and rest == name[2:] and rest.count(".") >= 1:
                return True
    return False


def days_left(cert: x509.Certificate, now: dt.datetime | None = None) -> float:
    now = now or dt.datetime.now(dt.UTC)
    return (cert.not_valid_after_utc - now).total_seconds() / 86400


def lifetime_days(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() / 86400


def key_description(cert: x509.Certificate) -> tuple[str, int, bool]:
    """(algorithm, bits, strong enough): RSA >= 2048, EC >= 256, Ed25519/Ed448."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, key.key_size >= 2048
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}", key.curve.key_size, key.curve.key_size >= 256
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return type(key).__name__.removesuffix("PublicKey"), 256, True
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, False
    return type(key).__name__, 0, False


def sha1_signed(cert: x509.Certificate) -> bool:
    return cert.signature_algorithm_oid in SHA1_OIDS


def order_problems(chain: list[x509.Certificate]) -> list[str]:
    """Problems with the order of the chain as sent: leaf first, then each certificate's issuer."""
    problems = []
    if not chain:
        return ["no certificate was presented"]
    leaf = chain[0]
    if is_ca(leaf):
        problems.append(f"the first certificate, {describe(leaf)}, is a CA certificate, not the server's")
    for i, (child, parent) in enumerate(zip(chain, chain[1:], strict=False), start=1):
        if child.issuer != parent.subject or not _signed_by(child, parent):
            problems.append(f"certificate {i + 1} ({describe(parent)}) did not issue certificate {i} "
                            f"({describe(child)}), whose issuer is {child.issuer.rfc4514_string()}")
    return problems


LEGACY = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1}


def _legacy_context(version: str) -> ssl.SSLContext:
    """A client limited to one legacy TLS version, asking nothing of the certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # OpenSSL 3 will not even offer TLS 1.0/1.1 above security level 0; lower it to ask the question at all
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # deprecated on purpose: asking for them is the whole point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = LEGACY[version]
    return ctx


def client_cannot_offer(version: str) -> str | None:
    """Why this host's TLS library cannot even offer `version` (a build without it, a system policy such as
    OPENSSL_CONF's Protocol or a crypto policy), so that no server's answer could be seen; None when it can.
    Asked of the library alone: a handshake into memory either writes a ClientHello or says why not."""
    try:
        _legacy_context(version).wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=False).do_handshake()
    except ssl.SSLWantReadError:
        return None  # the ClientHello is written; the answer would come from a server
    except (ssl.SSLError, ValueError) as exc:
        return f"{ssl.OPENSSL_VERSION}: {getattr(exc, 'reason', None) or exc}"
    return None


def offers_protocol(host: str, port: int, version: str, server_name: str | None = None,
                    timeout: float = 5.0) -> bool:
    """Whether the server completes a handshake limited to one legacy TLS version (TLSv1 or TLSv1.1). Ask
    client_cannot_offer first: a refusal only counts from a client that offered the version."""
    ctx = _legacy_context(version)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise TLSProbeError(f"cannot connect to {host}:{port}: {exc}") from None
    try:
        with ctx.wrap_socket(sock, server_hostname=server_name or host) as tls:
            return tls.version() == version
    except (ssl.SSLError, ConnectionResetError):
        return False
    finally:
        sock.close()
