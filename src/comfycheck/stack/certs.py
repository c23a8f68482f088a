"""The embedded stack's own PKI: a root CA, an intermediate and a server certificate, minted with `cryptography`.

Shaped like Let's Encrypt's: root -> intermediate -> 90-day leaf with SAN and serverAuth EKU, the leaf first in the
chain file nginx serves. The `fault` argument mints the broken certificates the TLS self-tests need.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LEAF_LIFETIME = dt.timedelta(days=90)
CERT_FAULTS = ("expired", "not_yet_valid", "wrong_host", "untrusted", "expiring_5d", "leaf_only")


@dataclass(frozen=True)
class CertFiles:
    ca_bundle: Path  # the root the local profile trusts (kept across restarts)
    chain: Path  # leaf + intermediate, what nginx presents
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "comfycheck embedded stack"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(subject: str, key, issuer_name: x509.Name | None, issuer_key, not_before, not_after, path_len):
    pub = key.public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject))
               .issuer_name(issuer_name or _name(subject))
               .public_key(pub)
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before)
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False))
    if issuer_key is not key:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    return builder.sign(issuer_key, hashes.SHA384())


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _load_or_make_ca(pki: Path):
    """The stack's root and intermediate, minted once and kept, so a trusted root stays trusted; every stack of
    the checkout shares them, so one process at a time reads or mints them (pytest-xdist's workers start at once)."""
    pki.mkdir(parents=True, exist_ok=True)
    with open(pki / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _load_or_make_ca_locked(pki)


def _load_or_make_ca_locked(pki: Path):
    files = {n: pki / f"{n}.pem" for n in ("ca", "intermediate", "intermediate-key", "ca-key")}
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        root = x509.load_pem_x509_certificate(files["ca"].read_bytes())
        inter = x509.load_pem_x509_certificate(files["intermediate"].read_bytes())
        inter_key = serialization.load_pem_private_key(files["intermediate-key"].read_bytes(), None)
        if inter.not_valid_after_utc - now > dt.timedelta(days=120):
            return root, inter, inter_key
    except (OSError, ValueError):
        pass
    root_key, root, inter_key, inter = _new_ca("comfycheck Root CA", now)
    for name, key in (("ca-key", root_key), ("intermediate-key", inter_key)):
        _write(files[name], _key_pem(key), 0o600)
    _write(files["intermediate"], _pem(inter))
    _write(files["ca"], _pem(root))  # last: a client that trusts it finds the rest in place
    return root, inter, inter_key


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Whole or not at all: another process may be reading the root it trusts."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def _new_ca(root_cn: str, now: dt.datetime):
    day = dt.timedelta(days=1)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _ca(root_cn, root_key, None, root_key, now - day, now + 3650 * day, 1)
    inter_key = ec.generate_private_key(ec.SECP384R1())
    inter = _ca("comfycheck Intermediate E1", inter_key, root.subject, root_key, now - day, now + 1095 * day, 0)
    return root_key, root, inter_key, inter


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def mint(pki: Path, out: Path, hosts: list[str], fault: str | None = None) -> CertFiles:
    """Issue a server certificate for `hosts` from the CA in `pki`, into `out`; `fault` breaks it on purpose."""
    if fault is not None and fault not in CERT_FAULTS:
        raise ValueError(f"unknown certificate fault {fault!r} (known: {', '.join(CERT_FAULTS)})")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = dt.timedelta(days=1)
    root, inter, inter_key = _load_or_make_ca(pki)
    if fault == "untrusted":  # a look-alike chain from a root nobody trusts
        _, _, inter_key, inter = _new_ca("comfycheck Root CA", now)

    not_before, not_after = now - day, now - day + LEAF_LIFETIME
    if fault == "expired":
        not_before, not_after = now - LEAF_LIFETIME - 2 * day, now - 2 * day
    elif fault == "not_yet_valid":
        not_before, not_after = now + 2 * day, now + 2 * day + LEAF_LIFETIME
    elif fault == "expiring_5d":
        not_before, not_after = now + 5 * day - LEAF_LIFETIME, now + 5 * day
    names = ["comfycheck-other-host.example.net"] if fault == "wrong_host" else hosts

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    usage = dict(digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
                 key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(inter.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(**usage), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(_san(names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()),
                           critical=False)
            .sign(inter_key, hashes.SHA256()))

    out.mkdir(parents=True, exist_ok=True)
    files = CertFiles(pki / "ca.pem", out / "chain.pem", out / "key.pem")
    # leaf_only: cert.pem configured where fullchain.pem belongs, the intermediate left out
    files.chain.write_bytes(_pem(leaf) if fault == "leaf_only" else _pem(leaf) + _pem(inter))
    files.key.write_bytes(_key_pem(leaf_key))
    files.key.chmod(0o600)
    return files
