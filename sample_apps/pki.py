"""A throwaway PKI for the demo and the tests: never for production.

:func:`make_pki` writes, into a directory you own (a temporary one), a CA, a server
certificate for ``127.0.0.1`` and ``localhost``, and one client certificate per name, all on
P-256 keys valid for a day, and returns their paths and ready ``ssl.SSLContext`` s::

    pki = make_pki(tmp_path, clients=("lender",))
    server_ctx = pki.server_context(client_auth="optional")
    client_ctx = pki.client_context("lender")
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ClientAuth = Literal["none", "optional", "required"]


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key, in memory and on disk."""

    name: str
    cert_pem: bytes
    key_pem: bytes
    cert_path: Path
    key_path: Path

    @property
    def cert_der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.cert_pem.decode("ascii"))


@dataclass(frozen=True)
class PKI:
    directory: Path
    ca_cert_pem: bytes
    ca_cert_path: Path
    server: Identity
    clients: Mapping[str, Identity]

    def server_context(self, client_auth: ClientAuth = "optional") -> ssl.SSLContext:
        """TLS for a server on 127.0.0.1; asks for client certificates issued by the CA."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server.cert_path, self.server.key_path)
        if client_auth != "none":
            ctx.load_verify_locations(cafile=str(self.ca_cert_path))
            ctx.verify_mode = ssl.CERT_REQUIRED if client_auth == "required" else ssl.CERT_OPTIONAL
        return ctx

    def client_context(self, client: str | None = None) -> ssl.SSLContext:
        """TLS for a client that trusts only this CA, presenting ``client``'s certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert_path))
        if client is not None:
            who = self.clients[client]
            ctx.load_cert_chain(who.cert_path, who.key_path)
        return ctx


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flask-apisec throwaway PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _key_usage(*, sign_certs: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not sign_certs,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not sign_certs,
        key_cert_sign=sign_certs,
        crl_sign=sign_certs,
        encipher_only=False,
        decipher_only=False,
    )


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Identity:
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert_pem)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    return Identity(name, cert_pem, key_pem, cert_path, key_path)


def _leaf(
    directory: Path,
    name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
    days: int,
) -> Identity:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(name, ca_cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign_certs=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _write(directory, name, builder.sign(ca_key, hashes.SHA256()), key)


def make_pki(
    directory: Path,
    *,
    clients: Iterable[str] = ("client",),
    hosts: Iterable[str] = ("127.0.0.1", "localhost"),
    days: int = 1,
) -> PKI:
    """Generate the CA, the server certificate for ``hosts`` and the client certificates."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        _builder("throwaway test CA", _name("throwaway test CA"), ca_key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign_certs=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca = _write(directory, "ca", ca_cert, ca_key)
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    server = _leaf(
        directory, "server", (ca_cert, ca_key), ExtendedKeyUsageOID.SERVER_AUTH, sans, days
    )
    issued = {
        name: _leaf(directory, name, (ca_cert, ca_key), ExtendedKeyUsageOID.CLIENT_AUTH, [], days)
        for name in clients
    }
    return PKI(directory, ca.cert_pem, ca.cert_path, server, issued)
