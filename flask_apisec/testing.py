"""Test helpers: a throwaway PKI and client certificates, an issuer that mints access tokens,
and a Flask test client that presents tokens, client certificates, DPoP proofs and request
signatures. Never for production: keys are generated on the fly and thrown away.

::

    issuer = TestIssuer("PS256")
    app.config["APISEC_ISSUERS"] = [issuer.issuer_config()]
    app.test_client_class = APISecClient
    cert = make_client_cert("tpp")
    client = app.test_client()
    client.get("/accounts", token=issuer.token("accounts:read", cert=cert), client_cert=cert)

Werkzeug's development server already puts the TLS client certificate into
``SSL_CLIENT_CERT`` (PEM) when it runs with an ``ssl_context``: :func:`serving` uses it as is.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import os
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from flask.testing import EnvironBuilder, FlaskClient
from werkzeug.datastructures import Headers
from werkzeug.serving import make_server
from werkzeug.test import TestResponse
from werkzeug.wrappers import Request

from wsgi_apisec import jws, profiles
from wsgi_apisec.dpop import make_proof
from wsgi_apisec.encoding import json_dumps
from wsgi_apisec.environ import message_from_environ, target_uri
from wsgi_apisec.keys import PrivateKey, PublicKey, x5t_s256
from wsgi_apisec.message import Body
from wsgi_apisec.signatures import Profile, ResponseSigner

__all__ = [
    "PKI",
    "APISecClient",
    "ClientAuth",
    "ClientCert",
    "Identity",
    "TestIssuer",
    "make_client_cert",
    "make_pki",
    "serving",
]

ClientAuth = Literal["none", "optional", "required"]

# --- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientCert:
    """A certificate and its key, in memory."""

    name: str
    cert_pem: bytes
    key_pem: bytes

    @property
    def cert_der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.cert_pem.decode("ascii"))

    @property
    def x5t_s256(self) -> str:
        """RFC 8705 §3.1 thumbprint, the value of a bound token's ``cnf``."""
        return x5t_s256(self.cert_der)

    @property
    def key(self) -> PrivateKey:
        return PrivateKey.from_pem(self.key_pem)

    @property
    def client_cert_header(self) -> str:
        """RFC 9440 §2.2 ``Client-Cert`` value (an RFC 8941 byte sequence of the DER)."""
        import base64

        return ":" + base64.b64encode(self.cert_der).decode("ascii") + ":"


@dataclass(frozen=True)
class Identity(ClientCert):
    """A certificate and its private key, in memory and on disk."""

    cert_path: Path
    key_path: Path


@dataclass(frozen=True)
class PKI:
    """A CA, a server certificate and client certificates, written under ``directory``."""

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


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


_Signer = tuple[x509.Name, ec.EllipticCurvePrivateKey]


def _certificate(
    name: str,
    signer: _Signer | None,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
    sans: Iterable[x509.GeneralName] = (),
    days: int = 1,
) -> ClientCert:
    """A P-256 certificate for ``name``, signed by ``signer`` (self-signed when None)."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name, issuer_key = signer if signer is not None else (_name(name), key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
        .add_extension(_key_usage(ca=ca), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    if list(sans):
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ClientCert(name, cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _write(directory: Path, made: ClientCert) -> Identity:
    cert_path, key_path = directory / f"{made.name}.crt", directory / f"{made.name}.key"
    cert_path.write_bytes(made.cert_pem)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(made.key_pem)
    return Identity(made.name, made.cert_pem, made.key_pem, cert_path, key_path)


def _signer(directory: Path) -> _Signer:
    cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert.subject, key


def make_client_cert(name: str = "client", *, pki: PKI | None = None, days: int = 1) -> ClientCert:
    """A client certificate (P-256, ``clientAuth``): issued by ``pki``'s CA, or self-signed
    (enough for RFC 8705 binding behind a proxy, which only compares thumbprints)."""
    signer = _signer(pki.directory) if pki is not None else None
    return _certificate(name, signer, days=days)


def make_pki(
    directory: Path,
    *,
    clients: Iterable[str] = ("client",),
    hosts: Iterable[str] = ("127.0.0.1", "localhost"),
    days: int = 1,
) -> PKI:
    """Generate the CA, the server certificate for ``hosts`` and the client certificates."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _write(directory, _certificate("ca", None, ca=True, days=days))
    signer = _signer(directory)
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    usage = ExtendedKeyUsageOID.SERVER_AUTH
    server = _write(directory, _certificate("server", signer, usage=usage, sans=sans, days=days))
    issued = {n: _write(directory, _certificate(n, signer, days=days)) for n in clients}
    return PKI(directory, ca.cert_pem, ca.cert_path, server, issued)


@contextmanager
def serving(app: Any, ssl_context: ssl.SSLContext | None = None) -> Iterator[int]:
    """Serve ``app`` with Werkzeug's threaded server on a free port of 127.0.0.1."""
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- tokens ---------------------------------------------------------------------------------


class TestIssuer:
    """An authorization server stand-in: one fresh key, RFC 9068 access tokens."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        alg: str = "ES256",
        *,
        issuer: str = "https://issuer.test",
        audience: str = "https://api.test",
        kid: str | None = None,
        lifetime: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.alg, self.issuer, self.audience = alg, issuer, audience
        self.lifetime, self.clock = lifetime, clock
        self.key = PrivateKey.generate(alg, kid=kid or f"{alg.lower()}-{secrets.token_hex(4)}")

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.to_jwk()]}

    def issuer_config(self, **overrides: Any) -> dict[str, Any]:
        """An ``APISEC_ISSUERS`` entry that trusts this issuer (inline JWKS)."""
        base = {"issuer": self.issuer, "jwks": self.jwks, "audience": self.audience}
        return {**base, "algorithms": [self.alg], **overrides}

    def token(
        self,
        scopes: str | Iterable[str] = (),
        *,
        cert: ClientCert | bytes | None = None,
        dpop_key: PrivateKey | PublicKey | None = None,
        header: Mapping[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed ``at+jwt``. ``cert`` (a certificate or its DER) binds it with
        ``cnf.x5t#S256``, ``dpop_key`` with ``cnf.jkt``. ``claims`` override the defaults;
        a claim or header member given as ``None`` is left out."""
        now = int(self.clock())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "client-1",
            "aud": self.audience,
            "client_id": "client-1",
            "iat": now,
            "exp": now + self.lifetime,
            "jti": secrets.token_urlsafe(12),
            "scope": scopes if isinstance(scopes, str) else " ".join(scopes),
        }
        cnf: dict[str, str] = {}
        if cert is not None:
            cnf["x5t#S256"] = cert.x5t_s256 if isinstance(cert, ClientCert) else x5t_s256(cert)
        if dpop_key is not None:
            cnf["jkt"] = dpop_key.thumbprint()
        if cnf:
            body["cnf"] = cnf
        body.update(claims)
        head = {"alg": self.alg, "typ": "at+jwt", "kid": self.key.kid, **(header or {})}
        return jws.sign(
            self.key,
            json_dumps({k: v for k, v in body.items() if v is not None}),
            {k: v for k, v in head.items() if v is not None},
            detached=False,
        )


# --- the test client ------------------------------------------------------------------------


def _pem(cert: ClientCert | bytes | str) -> str:
    if isinstance(cert, ClientCert):
        return cert.cert_pem.decode("ascii")
    if isinstance(cert, bytes):
        return ssl.DER_cert_to_PEM_cert(cert) if not cert.startswith(b"-") else cert.decode()
    return cert


class APISecClient(FlaskClient):
    """A :class:`~flask.testing.FlaskClient` whose requests take four more keywords:

    - ``token="..."``: sent as ``Authorization: Bearer`` (``DPoP`` with ``dpop=``);
    - ``client_cert=``: a :class:`ClientCert`, DER or PEM, put in ``SSL_CLIENT_CERT`` as
      the TLS layer of Werkzeug's server, mod_wsgi or uWSGI would;
    - ``dpop=PrivateKey`` (and ``dpop_nonce=``): an RFC 9449 proof for this request;
    - ``signature=(profile, PrivateKey)``: the request signed under that profile (last, so
      the signature covers the ``Authorization`` and ``DPoP`` fields).

    ``client.token`` / ``client.client_cert`` / ... set the same for every request.
    """

    token: str | None = None
    client_cert: ClientCert | bytes | str | None = None
    dpop: PrivateKey | None = None
    dpop_nonce: str | None = None
    signature: tuple[Profile | str, PrivateKey] | None = None

    _EXTRAS = ("token", "client_cert", "dpop", "dpop_nonce", "signature")

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        extras = {name: kwargs.pop(name, getattr(self, name)) for name in self._EXTRAS}
        if all(value is None for value in extras.values()):
            return super().open(*args, **kwargs)
        if args and not isinstance(args[0], str):
            raise TypeError("APISecClient extras need a path, not a prepared request")
        buffered, redirects = kwargs.pop("buffered", False), kwargs.pop("follow_redirects", False)
        headers = Headers(kwargs.pop("headers", None))
        if extras["token"] is not None:
            scheme = "DPoP" if extras["dpop"] is not None else "Bearer"
            headers["Authorization"] = f"{scheme} {extras['token']}"
        base = {**self.environ_base, **kwargs.pop("environ_base", {})}
        if extras["client_cert"] is not None:
            base["SSL_CLIENT_CERT"] = _pem(extras["client_cert"])
        builder = EnvironBuilder(self.application, *args, headers=headers, **kwargs)
        builder.environ_base = base
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        _add_proofs(environ, extras)
        return super().open(Request(environ), buffered=buffered, follow_redirects=redirects)


def _add_proofs(environ: dict[str, Any], extras: Mapping[str, Any]) -> None:
    body = environ["wsgi.input"].read()
    environ["wsgi.input"] = io.BytesIO(body)
    if extras["dpop"] is not None:
        environ["HTTP_DPOP"] = make_proof(
            extras["dpop"],
            environ["REQUEST_METHOD"],
            target_uri(environ),
            access_token=extras["token"],
            nonce=extras["dpop_nonce"],
        )
    if extras["signature"] is not None:
        profile, key = extras["signature"]
        if isinstance(profile, str):
            profile = profiles.get(profile)
        message = message_from_environ(environ, Body(body))
        for name, value in ResponseSigner(profile, key).sign(message):
            environ["HTTP_" + name.upper().replace("-", "_")] = value
