"""Certificates for Stratum's private CA (ECDSA P-256: small and fast to sign).

The control plane owns the CA; it issues its own server certificate and one
client certificate per node (common name = node id). Every certificate names
SERVER_NAME so clients can verify the control plane whatever address they
dial (clients set it as the TLS target name).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
import ssl
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stratum.grpc_util import SERVER_NAME  # noqa: F401 - the name every certificate carries


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_key(pem: bytes):
    return serialization.load_pem_private_key(pem, password=None)


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def fingerprint(pem: bytes) -> str:
    """SHA-256 of the certificate's DER encoding, hex."""
    return hashlib.sha256(load_cert(pem).public_bytes(serialization.Encoding.DER)).hexdigest()


def public_key_fingerprint(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Stratum"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(days: int = 3650) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of a new self-signed CA."""
    key = new_key()
    name = _name("Stratum CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key_pem(key), cert_pem(cert)


def _sign(ca_key_pem: bytes, ca_cert_pem: bytes, public_key, cn: str, days: int, usage, sans=None) -> bytes:
    ca_key, ca_cert = load_key(ca_key_pem), load_cert(ca_cert_pem)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return cert_pem(builder.sign(ca_key, hashes.SHA256()))


def issue_server_cert(ca_key_pem: bytes, ca_cert_pem: bytes, hosts: list[str], days: int = 825) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) for the control plane, valid for SERVER_NAME and `hosts`."""
    key = new_key()
    sans: list[x509.GeneralName] = [x509.DNSName(SERVER_NAME), x509.DNSName("localhost")]
    for host in dict.fromkeys(hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if host and host != "localhost":
                sans.append(x509.DNSName(host))
    cert = _sign(ca_key_pem, ca_cert_pem, key.public_key(), SERVER_NAME, days, ExtendedKeyUsageOID.SERVER_AUTH, sans)
    return key_pem(key), cert


def make_csr(key_pem_bytes: bytes, cn: str) -> bytes:
    key = load_key(key_pem_bytes)
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(cn)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr(pem: bytes) -> x509.CertificateSigningRequest:
    """Parse and verify a CSR; ValueError when it is not a valid, self-signed request."""
    csr = x509.load_pem_x509_csr(pem)
    if not csr.is_signature_valid:
        raise ValueError("certificate signing request has an invalid signature")
    return csr


def sign_client_cert(ca_key_pem: bytes, ca_cert_pem: bytes, csr: x509.CertificateSigningRequest, cn: str, days: int = 825) -> bytes:
    """A client certificate for the CSR's key with common name `cn` (the node id)."""
    return _sign(ca_key_pem, ca_cert_pem, csr.public_key(), cn, days, ExtendedKeyUsageOID.CLIENT_AUTH)


def write_private(path: str, data: bytes | str) -> None:
    """Write a file with 0600 permissions atomically (never a window with wider rights)."""
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def fetch_ca(host: str, port: int, expected_fingerprint: str, timeout: float = 10.0) -> bytes:
    """Fetch the CA certificate from the chain a control plane presents and check its fingerprint.

    The TLS handshake is not verified (we do not trust anything yet); trust
    comes from the fingerprint the join token carries. ConnectionError when
    the server cannot be reached, ValueError when no certificate matches.
    """
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
                chain = tls._sslobj.get_unverified_chain() or []  # public API only from Python 3.13
                ders = [c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore[attr-defined]
    except OSError as e:
        raise ConnectionError(f"cannot reach control plane at {host}:{port}: {e}") from e
    for der in ders:
        if hashlib.sha256(der).hexdigest() == expected_fingerprint:
            return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    raise ValueError(
        f"the control plane at {host}:{port} did not present the CA this join token was issued by "
        "(fingerprint mismatch): wrong server or wrong token"
    )
