"""Servers for the client tests, started once per test session (per xdist worker)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from flask_apisec.testing import PKI, TestIssuer, make_pki
from sample_apps.authserver import create_app
from sample_apps.config import DEMO_AUDIENCE, DemoConfig, make_demo_config
from tests.samples import serve
from wsgi_apisec.keys import PrivateKey
from wsgi_apisec.tokens import Issuer, TokenValidator

from . import Counting, Parties, dpop_token_endpoint, resource_server

DPOP_CLIENT, DPOP_SECRET = "fapi-client", "fapi-client-secret-0123456789"


@dataclass(frozen=True)
class Live:
    """Where everything runs, and what each party holds."""

    pki: PKI
    demo: DemoConfig
    keys: Parties
    authserver: str  # base URL of the sample AS
    authserver_hits: Counting
    dpop_as: str  # base URL of the DPoP AS
    dpop_as_hits: Counting
    api: str  # base URL of the resource server
    api_hits: Counting

    def files(self, who: str = "client") -> tuple[str, str]:
        identity = self.pki.clients[who]
        return str(identity.cert_path), str(identity.key_path)

    @property
    def ca(self) -> str:
        return str(self.pki.ca_cert_path)


def _es256(kid: str) -> PrivateKey:
    return PrivateKey.generate("ES256", kid=kid)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    pki = make_pki(tmp_path_factory.mktemp("client-pki"), clients=("client", "other"))
    demo = make_demo_config()
    keys = Parties(
        ocen_client=demo.keys["ocen-lender"],
        ocen_provider=PrivateKey.generate("RS256", kid="lender-api"),
        g2p_partner_rs256=demo.keys["g2p-partner"],
        g2p_partner_ed25519=demo.ed25519_keys["g2p-partner"],
        mapper_rs256=demo.keys["g2p-mapper"],
        mapper_ed25519=demo.ed25519_keys["g2p-mapper"],
        fapi_client=_es256("fapi-client"),
        fapi_server=_es256("fapi-server"),
    )
    as_key = PrivateKey.generate("ES256")
    # The sample AS names its key by its RFC 7638 thumbprint.
    as_jwk = {**as_key.public_key().to_jwk(), "kid": as_key.thumbprint()}
    dpop_issuer = TestIssuer("ES256", issuer="https://dpop-as.test", audience=DEMO_AUDIENCE)
    context = pki.server_context()
    as_config = {**demo.authserver, "signing_key_pem": as_key.to_pem().decode()}
    as_hits = Counting(lambda e, s: [])
    dpop_hits = Counting(
        dpop_token_endpoint(
            lambda jwk: dpop_issuer.token("fapi:read", dpop_key=jwk, client_id=DPOP_CLIENT),
            DPOP_CLIENT,
            DPOP_SECRET,
        )
    )
    api_hits = Counting(lambda e, s: [])

    def authserver(url: str) -> Counting:
        as_hits.app = create_app({**as_config, "issuer": url})
        return as_hits

    with serve(authserver, context) as as_url, serve(lambda _: dpop_hits, context) as dpop_url:
        validator = TokenValidator(
            [
                Issuer(
                    as_url, jwks={"keys": [as_jwk]}, audience=DEMO_AUDIENCE, algorithms=["ES256"]
                ),
                Issuer(
                    dpop_issuer.issuer,
                    jwks=dpop_issuer.jwks,
                    audience=DEMO_AUDIENCE,
                    algorithms=["ES256"],
                ),
            ]
        )
        api_hits.app = resource_server(validator, keys)
        with serve(lambda _: api_hits, context) as api_url:
            yield Live(pki, demo, keys, as_url, as_hits, dpop_url, dpop_hits, api_url, api_hits)
