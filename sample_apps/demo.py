"""``make demo``: the whole sample network on 127.0.0.1 over mutual TLS, and the stories of
its participants run as their clients would run them, with ``wsgi_apisec.client``.

1. OCEN: the borrower agent gets a token (``private_key_jwt``), applies for a loan with
   signed requests and verifies the lender's signed answers; asks for offers, picks one.
2. FDX: the data recipient gets a certificate-bound user token (code + PKCE), reads
   accounts and transactions; the token over another certificate and a token without the
   scope are refused.
3. G2P Connect: the partner (``tls_client_auth``) links, resolves and unlinks an ID, and an
   async link's signed callback reaches its receiver.
4. Attacks: tampered bodies and replays are refused.

Everything is throwaway: a fresh CA and certificates, fresh keys, free ports, a temporary
directory; servers, the mapper's callback worker and the directory are gone on exit, also
on Ctrl-C. Exit status 0 only when every step is ✓.

    python -m sample_apps.demo
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .demo_transcript import FAIL, Transcript

if TYPE_CHECKING:
    from .demo_network import Network

__all__ = ["main", "run"]

Tweak = Callable[["Network"], "Network"]
#: Loggers whose request lines and refusal reasons would drown the transcript; errors
#: (a traceback of a server that failed) still show.
QUIET = ("werkzeug", "wsgi_apisec", "flask_apisec", "sample_apps", "authlib", "urllib3")


@contextmanager
def quiet_logs() -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in QUIET}
    for name in saved:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def loopback_without_proxy() -> Iterator[None]:
    """Every call goes to 127.0.0.1: a proxy from the environment (``HTTPS_PROXY``) must
    not get it. ``requests`` (the clients, Authlib, the mapper's callbacks) honours
    ``no_proxy``; the key fetchers ignore proxies anyway."""
    names = ("no_proxy", "NO_PROXY")
    saved = {name: os.environ.get(name) for name in names}
    given = [v for v in saved.values() if v]
    for name in names:
        os.environ[name] = ",".join([*given[:1], "127.0.0.1", "localhost"])
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def describe(net: Network, out: Transcript, workdir: Path) -> None:
    parties = ", ".join(net.certs)
    out.say(f"  PKI       throwaway CA + server cert for 127.0.0.1; client certs {parties}")
    out.say(f"            in {workdir}")
    out.say(f"  auth      {net.auth}   Authlib AS, ES256 at+jwt (client cert optional)")
    out.say(f"  registry  {net.registry}   participant keys (public, TLS with the demo CA)")
    out.say(f"  lender    {net.lender}   OCEN lender-1 (client cert optional)")
    out.say(f"  fdx       {net.fdx}   FDX v6 API (client cert required)")
    out.say(f"  mapper    {net.mapper}   G2P Connect mapper (cert-bound tokens)")
    out.say(f"  receiver  {net.receiver}   g2p-partner's callbacks (client cert required)")


def run(out: Transcript, workdir: Path, tweak: Tweak | None = None) -> None:
    """Start the network under ``workdir``, run every story, stop everything."""
    # Imported here, inside main()'s Ctrl-C handling: loading the samples takes a moment.
    from .demo_attacks import attack_story
    from .demo_fdx import fdx_story
    from .demo_g2p import g2p_story
    from .demo_network import start_network
    from .demo_ocen import ocen_story

    with ExitStack() as stack:
        net = start_network(workdir, stack)
        if tweak is not None:
            net = tweak(net)
        describe(net, out, workdir)
        ocen = ocen_story(net, out, stack)
        fdx_story(net, out, stack)
        g2p = g2p_story(net, out, stack)
        attack_story(net, out, ocen, g2p)


def main(tweak: Tweak | None = None, out: Transcript | None = None) -> int:
    """Run the demo; 0 when every step passed. ``tweak`` changes the network before the
    stories run (the tests use it to prove that a step can fail)."""
    if out is None:
        if hasattr(sys.stdout, "reconfigure"):  # a terminal that cannot show ✓ gets "?"
            sys.stdout.reconfigure(errors="replace")
        out = Transcript()
    out.say("flask-apisec demo: OCEN, FDX and G2P Connect on 127.0.0.1 over mutual TLS")
    try:
        with (
            quiet_logs(),
            loopback_without_proxy(),
            tempfile.TemporaryDirectory(prefix="apisec-demo-") as tmp,
        ):
            run(out, Path(tmp), tweak)
    except KeyboardInterrupt:
        out.say("\ninterrupted: servers stopped, callback worker stopped, temporary files removed")
        return 130
    except Exception as exc:  # the network did not start (steps report their own failures)
        out.say(f"{FAIL} the demo stopped: {type(exc).__name__}: {exc}")
        return 1
    out.say()
    out.say(out.summary())
    return 0 if out.passed else 1


if __name__ == "__main__":
    sys.exit(main())
