"""Client certificates of a chosen size from the stack's CA, for the RFC 9440 map tests."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flask_apisec.testing import PKI, Identity

__all__ = ["issue_with_pem_lines", "tls_context"]


def tls_context(pki: PKI, who: Identity) -> ssl.SSLContext:
    """A client context trusting ``pki``'s CA and presenting ``who``'s certificate."""
    context = ssl.create_default_context(cafile=str(pki.ca_cert_path))
    context.load_cert_chain(who.cert_path, who.key_path)
    return context


def issue_with_pem_lines(pki: PKI, directory: Path, name: str, lines: int) -> Identity:
    """A client certificate from ``pki``'s CA whose PEM body has exactly ``lines`` lines of
    64 characters (48 bytes of DER each), grown with DNS names."""
    ca_dir = pki.directory
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)

    def build(sans: int) -> bytes:
        names = [x509.DNSName(f"client-{i:04d}.{name}.example") for i in range(sans)]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName(names), False)
            .sign(ca_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    one = len(ssl.PEM_cert_to_DER_cert(build(1).decode()))
    two = len(ssl.PEM_cert_to_DER_cert(build(2).decode()))
    sans = max(1, (lines * 48 - 24 - one) // (two - one) + 1)  # aim at mid-line
    for _ in range(20):
        pem = build(sans)
        got = len(pem.splitlines()) - 2
        if got == lines:
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
            cert_path.write_bytes(pem)
            key_path.write_bytes(key_pem)
            return Identity(name, pem, key_pem, cert_path, key_path)
        sans += 1 if got < lines else -1
    raise AssertionError(f"no certificate of {lines} PEM lines")
