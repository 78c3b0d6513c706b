"""Where the client certificate of a request comes from (for RFC 8705 certificate binding).

Two places, and what each is trusted for:

- **The TLS layer of this server.** The WSGI adapter (``environ.py``) puts the certificate the
  client presented into ``message.context["tls_client_cert"]``: the PEM text of
  ``SSL_CLIENT_CERT`` (Werkzeug's dev server with ``ssl_context``, mod_wsgi, uWSGI) as ``str``,
  or the DER bytes of gunicorn's peer certificate. Both forms (and PEM as bytes) are accepted.
- **A header set by a TLS-terminating proxy**, read *only* when ``message.remote_addr`` is one
  of ``trusted_proxies``. Anyone can send such a header, so one from any other peer is
  ignored (and logged), never trusted. Forms: RFC 9440 ``Client-Cert``; nginx
  ``$ssl_client_escaped_cert`` (URL-escaped PEM, header ``X-SSL-Client-Cert`` by default);
  Envoy ``X-Forwarded-Client-Cert`` (``Cert="<URL-escaped PEM>"``).

When the peer is a trusted proxy only its header is read: that peer's own TLS certificate,
if it has one, names the proxy, not the client, so it is never taken for the client's. A
header from a trusted proxy that cannot be parsed gives *no* certificate (logged as a
warning), so a certificate-bound token then fails with ``invalid_token`` at binding time; an
unbound token is unaffected.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from . import sfv
from .errors import APISecError, ConfigurationError
from .message import Message

__all__ = ["CLIENT_CERT", "SSL_CLIENT_CERT", "TLS_CONTEXT_KEY", "XFCC", "ClientCertSource"]

log = logging.getLogger(__name__)

#: ``message.context`` key for the TLS layer's client certificate (PEM ``str`` or DER ``bytes``).
TLS_CONTEXT_KEY = "tls_client_cert"

#: Names of the proxy header forms, for :attr:`ClientCertSource.header_forms`.
CLIENT_CERT = "client-cert"
SSL_CLIENT_CERT = "ssl-client-cert"
XFCC = "x-forwarded-client-cert"
_FORMS = (CLIENT_CERT, SSL_CLIENT_CERT, XFCC)

#: A certificate is a few KiB; a longer header is refused before any decoding.
MAX_HEADER_LENGTH = 16 * 1024
#: Certificates parsed, kept by their exact text: a client sends the same one on every
#: request, and parsing it again (15-80 µs) is most of what certificate binding costs.
#: Only successes are kept (a parser that raises caches nothing), at most 16 KiB each.
_PARSED_CACHE = 256
#: Peer addresses whose trusted-proxy answer a source keeps (then it starts over).
_ADDRESS_CACHE = 1024

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: What cryptography raises for a certificate it cannot read (a version field other than
#: v1/v3 is InvalidVersion, which is not a ValueError).
_UNPARSABLE = (ValueError, x509.InvalidVersion)


class _BadHeader(ValueError):
    """A proxy header that is present but cannot be turned into a certificate."""


@dataclass(frozen=True)
class ClientCertSource:
    """Finds the DER client certificate of a request: see the module docstring.

    ``trusted_proxies``: IP addresses or CIDR networks of TLS-terminating proxies (default
    none: no header is ever trusted). ``header_forms``: which proxy header forms are read,
    in that order (default only RFC 9440 ``client-cert``; enable only the form your proxy
    sets *and overwrites*, so a client cannot slip in another one through the proxy).
    """

    trusted_proxies: Iterable[str] = ()
    header_forms: Iterable[str] = (CLIENT_CERT,)
    ssl_client_cert_header: str = "X-SSL-Client-Cert"
    #: Read ``message.context["tls_client_cert"]`` (turn off when a proxy always terminates TLS).
    use_tls_layer: bool = True
    _networks: tuple[_Network, ...] = field(init=False, repr=False)
    _forms: tuple[str, ...] = field(init=False, repr=False)
    #: The header field name of each form in ``_forms``, in the same order.
    _names: tuple[str, ...] = field(init=False, repr=False)
    #: remote address -> is_trusted_proxy: an address is parsed once, not per request.
    _trusted: dict[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        proxies = _as_tuple(self.trusted_proxies)
        forms = tuple(f.lower() for f in _as_tuple(self.header_forms))
        unknown = [f for f in forms if f not in _FORMS]
        if unknown:
            raise ConfigurationError(f"unknown client certificate header form(s): {unknown}")
        networks = []
        for entry in proxies:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as exc:
                raise ConfigurationError(f"trusted proxy {entry!r} is not an IP or CIDR") from exc
        object.__setattr__(self, "trusted_proxies", proxies)
        object.__setattr__(self, "header_forms", forms)
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "_forms", forms)
        object.__setattr__(self, "_names", tuple(self._header_name(f) for f in forms))
        object.__setattr__(self, "_trusted", {})

    def is_trusted_proxy(self, remote_addr: str | None) -> bool:
        if not remote_addr or not self._networks:
            return False
        known = self._trusted.get(remote_addr)
        if known is None:
            if len(self._trusted) >= _ADDRESS_CACHE:
                self._trusted.clear()  # many peers: start over rather than grow
            known = self._trusted[remote_addr] = self._is_trusted(remote_addr)
        return known

    def _is_trusted(self, remote_addr: str) -> bool:
        try:
            addr = ipaddress.ip_address(remote_addr.strip("[]"))
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self._networks)

    def client_certificate(self, message: Message) -> bytes | None:
        """The client certificate as DER, or ``None`` when there is no usable one."""
        if self.is_trusted_proxy(message.remote_addr):
            headers = message.headers
            pairs = zip(self._forms, self._names, strict=True)
            present = [(form, name) for form, name in pairs if name in headers]
            # No header from the proxy means its client showed no certificate (nginx leaves
            # an empty variable's header out): the TLS peer here is the proxy itself, and a
            # token bound to *its* certificate must not pass for every client without one.
            return self._from_headers(message, present) if present else None
        self._warn_untrusted(message)
        if self.use_tls_layer:
            return _from_tls(message.context.get(TLS_CONTEXT_KEY))
        return None

    def _header_name(self, form: str) -> str:
        return {CLIENT_CERT: "Client-Cert", SSL_CLIENT_CERT: self.ssl_client_cert_header}.get(
            form, "X-Forwarded-Client-Cert"
        )

    def _from_headers(self, message: Message, present: list[tuple[str, str]]) -> bytes | None:
        """The certificate of the ``(form, header name)`` pairs the request carries."""
        found: set[bytes] = set()
        for form, name in present:
            values = message.headers.get_all(name)
            try:
                if len(values) != 1:
                    raise _BadHeader(f"{len(values)} field lines")
                cert = _PARSERS[form](values[0].strip(" \t"))
            except _BadHeader as exc:
                log.warning(
                    "client certificate header %s from %s is unusable: %s",
                    name,
                    message.remote_addr,
                    exc,
                )
                return None
            if cert is not None:
                found.add(cert)
        if len(found) > 1:
            log.warning("client certificate headers from %s disagree", message.remote_addr)
            return None
        return found.pop() if found else None

    def _warn_untrusted(self, message: Message) -> None:
        for name in self._names:
            if name in message.headers:
                log.warning("ignoring %s header from untrusted peer %s", name, message.remote_addr)


def _as_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@functools.lru_cache(maxsize=_PARSED_CACHE)
def _check_der(der: bytes) -> bytes:
    try:
        x509.load_der_x509_certificate(der)
    except _UNPARSABLE as exc:
        raise _BadHeader("not a DER X.509 certificate") from exc
    return der


def _unescape(value: str) -> str:
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as exc:
        raise _BadHeader("escaped PEM is not UTF-8") from exc


@functools.lru_cache(maxsize=_PARSED_CACHE)
def _pem_to_der(pem: str | bytes) -> bytes:
    raw = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(raw).public_bytes(Encoding.DER)
    except _UNPARSABLE as exc:
        raise _BadHeader("not a PEM X.509 certificate") from exc


def _from_tls(value: object) -> bytes | None:
    """The TLS layer's certificate: PEM ``str``/``bytes`` or DER ``bytes``; empty means none."""
    if not value:
        return None
    try:
        if isinstance(value, str) or (isinstance(value, bytes) and value.lstrip().startswith(b"-")):
            return _pem_to_der(value)
        if isinstance(value, bytes):
            return _check_der(value)
    except _BadHeader as exc:
        log.warning("TLS layer client certificate is unusable: %s", exc)
        return None
    log.warning("TLS layer client certificate has unexpected type %s", type(value).__name__)
    return None


@functools.lru_cache(maxsize=_PARSED_CACHE)
def _parse_client_cert(value: str) -> bytes | None:
    """RFC 9440 §2.2: ``Client-Cert`` is an RFC 8941 Byte Sequence of the DER certificate."""
    try:
        item = sfv.parse_item(value, name="Client-Cert")
    except APISecError as exc:
        raise _BadHeader(exc.detail) from exc
    if not isinstance(item.value, bytes):
        raise _BadHeader("not a structured-field byte sequence")
    return _check_der(item.value)


@functools.lru_cache(maxsize=_PARSED_CACHE)
def _parse_escaped_pem(value: str) -> bytes | None:
    """nginx ``$ssl_client_escaped_cert``: the PEM, URL-escaped; empty when no certificate."""
    if len(value) > MAX_HEADER_LENGTH:
        raise _BadHeader("too long")
    if not value:
        return None
    return _pem_to_der(_unescape(value))


@functools.lru_cache(maxsize=_PARSED_CACHE)
def _parse_xfcc(value: str) -> bytes | None:
    """Envoy XFCC: ``;``-separated ``Key=Value`` pairs, values quoted when they hold ``,;=``.

    Only a single element is accepted (the edge proxy set with ``SANITIZE_SET``): with several
    elements there is no way to tell which one describes the end client.
    """
    if len(value) > 2 * MAX_HEADER_LENGTH:
        raise _BadHeader("too long")
    elements = _split_xfcc(value)
    if len(elements) != 1:
        raise _BadHeader(f"{len(elements)} elements; exactly one is accepted")
    certs = [v for k, v in elements[0] if k.lower() == "cert"]
    if len(certs) > 1:
        raise _BadHeader("more than one Cert")
    if not certs or not certs[0]:
        return None
    return _pem_to_der(_unescape(certs[0]))


def _split_xfcc(value: str) -> list[list[tuple[str, str]]]:
    elements: list[list[tuple[str, str]]] = [[]]
    pos, end = 0, len(value)
    while pos < end:
        eq = value.find("=", pos)
        if eq < 0:
            raise _BadHeader("pair without '='")
        key = value[pos:eq].strip(" \t")
        pos = eq + 1
        if pos < end and value[pos] == '"':
            val, pos = _quoted(value, pos + 1)
        else:
            stop = min(
                (i for i in (value.find(";", pos), value.find(",", pos)) if i >= 0), default=end
            )
            val, pos = value[pos:stop], stop
        if not key:
            raise _BadHeader("empty key")
        elements[-1].append((key, val))
        if pos < end:
            if value[pos] not in ";,":
                raise _BadHeader("junk after quoted value")
            if value[pos] == ",":
                elements.append([])
            pos += 1
    return elements


def _quoted(value: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    while pos < len(value):
        char = value[pos]
        if char == "\\" and pos + 1 < len(value):
            out.append(value[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    raise _BadHeader("unterminated quoted value")


_PARSERS = {
    CLIENT_CERT: _parse_client_cert,
    SSL_CLIENT_CERT: _parse_escaped_pem,
    XFCC: _parse_xfcc,
}
