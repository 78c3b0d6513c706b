"""``make demo`` (``python -m sample_apps.demo``): every step ✓ and exit 0 on a good network;
a network with deliberate faults shows ✗ on exactly the steps those faults break and exits
1; Ctrl-C in the middle stops every server and worker and removes the temporary files."""

from __future__ import annotations

import dataclasses
import io
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sample_apps.demo import main
from sample_apps.demo_network import Network
from sample_apps.demo_transcript import Transcript
from wsgi_apisec.keys import PrivateKey

REPO_ROOT = Path(__file__).resolve().parents[1]
STEP = re.compile(r"^([✓✗]) +(\d+)\. (\S+) +(.+?) — (.*)$")

pytestmark = pytest.mark.server

#: (network, what was checked, evidence the line must show) for each step, in order.
STEPS = [
    ("OCEN", "token for ocen-lsp by private_key_jwt", "participantId lsp-1"),
    (
        "OCEN",
        "lender verified lsp-1's x-jws-signature (RS256, b64:false)",
        "201 CREATED la-",
    ),
    ("OCEN", "GenerateOffersRequest, signed", "2 offers: 50000.00 at 14.00 %"),
    ("OCEN", "SetOfferRequest for the second offer, signed", "200 OFFER_ACCEPTED"),
    ("FDX", "token for demo-user: code + PKCE, exchanged over mTLS", "cnf.x5t#S256"),
    ("FDX", "GET accounts with the certificate-bound token", "200, 4 accounts"),
    ("FDX", "GET acc-chk-1001/transactions", "response signed (RFC 9421"),
    ("FDX", "the same token over intruder's certificate", "401 invalid_token"),
    (
        "FDX",
        "client-credentials token without fdx:transactions:read",
        '403 insufficient_scope (token.insufficient_scope) scope="fdx:transactions:read"',
    ),
    ("G2P", "token for g2p-partner by tls_client_auth", "cnf.x5t#S256 = its certificate"),
    (
        "G2P",
        "mapper verified the partner's Signature (ed25519) on sync link",
        "response signed by g2p-mapper ✓",
    ),
    ("G2P", "sync resolve, scope details", "succ.id.active, fa account:123@bank"),
    ("G2P", "sync unlink", "succ, response signed by g2p-mapper ✓"),
    (
        "G2P",
        "async link: ACK now, signed callback later",
        "on-link arrived over mTLS, signed by g2p-mapper (ed25519, registry key) ✓",
    ),
    ("OCEN", "body changed after signing (amount 50000.00 → 90000.00)", "401 signature.invalid"),
    ("OCEN", "the accepted loan application sent again", "401 signature.replayed"),
    (
        "G2P",
        "body changed after signing (fa → account:666@evil)",
        "401 err.signature.invalid; token:55555@nid still not linked",
    ),
    ("G2P", "the accepted sync link sent again", "401 rjct.message_id.duplicate"),
]


def steps(text: str) -> list[tuple[str, str, str, str]]:
    """(mark, network, title, evidence) of each step line, checking they are numbered 1..n."""
    found = [STEP.match(line) for line in text.splitlines()]
    matched = [m for m in found if m is not None]
    assert [int(m[2]) for m in matched] == list(range(1, len(matched) + 1)), text
    return [(m[1], m[3], m[4], m[5]) for m in matched]


def workdir_of(text: str) -> Path:
    found = re.search(r"^ +in (\S+apisec-demo-\S+)$", text, re.MULTILINE)
    assert found, text
    return Path(found[1])


def run_in_process(tweak: Any) -> tuple[int, str]:
    buffer = io.StringIO()
    code = main(tweak, Transcript(out=buffer))
    return code, buffer.getvalue()


def test_make_demo_passes_every_step() -> None:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    # A dead proxy in the environment: everything is on 127.0.0.1 and must not go through it.
    env |= {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "sample_apps.demo"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert time.monotonic() - started < 60
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""  # no request logs, no refusal warnings
    got = steps(proc.stdout)
    assert [(label, title) for _, label, title, _ in got] == [(s[0], s[1]) for s in STEPS]
    for (mark, _, title, evidence), (_, _, wanted) in zip(got, STEPS, strict=True):
        assert mark == "✓", title
        assert wanted in evidence, (title, evidence)
    assert re.search(rf"^{len(STEPS)}/{len(STEPS)} steps passed in [\d.]+ s$", proc.stdout, re.M)
    assert not workdir_of(proc.stdout).exists()


def test_faults_show_crosses_and_a_nonzero_exit() -> None:
    def faults(net: Network) -> Network:
        return dataclasses.replace(
            net,
            # lsp-1 signs with a key the registry does not list for it.
            signing_keys={**net.signing_keys, "lsp-1": PrivateKey.generate("RS256")},
            # "intruder" presents the aggregator's own certificate: the token is accepted.
            certs={**net.certs, "intruder": net.certs["fdx-aggregator"]},
            # The G2P body goes out as signed: the mapper accepts it.
            tampering={k: v for k, v in net.tampering.items() if b"account:" not in k},
        )

    code, text = run_in_process(faults)
    assert code == 1, text
    got = steps(text)
    assert len(got) == len(STEPS), text
    failed = {i + 1: evidence for i, (mark, _, _, evidence) in enumerate(got) if mark == "✗"}
    assert sorted(failed) == [2, 3, 4, 8, 16, 17], text
    assert failed[2] == "expected 201, got 401 signature.invalid"
    assert failed[3] == "no loan application to continue"
    assert failed[4] == "no offers to choose from"
    assert failed[8] == "expected 401 invalid_token, got 200 -"
    assert failed[16] == "no accepted request to replay"
    assert failed[17] == "expected 401 err.signature.invalid, got 200 -"
    # The OCEN tampered body is still refused: the wrong key fails it first.
    assert got[14][0] == "✓" and got[14][3] == "401 signature.invalid"
    assert re.search(r"^12/18 steps passed — FAILED in [\d.]+ s$", text, re.MULTILINE), text


class Interrupting(queue.Queue[Any]):
    """Ctrl-C while the partner waits for its callback (step 14)."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        raise KeyboardInterrupt


def test_ctrl_c_stops_servers_and_workers_and_removes_files() -> None:
    before = set(threading.enumerate())
    code, text = run_in_process(lambda net: dataclasses.replace(net, callbacks=Interrupting()))
    assert code == 130, text
    assert [mark for mark, *_ in steps(text)] == ["✓"] * 13, text
    assert text.rstrip().endswith("temporary files removed")
    assert not workdir_of(text).exists()
    deadline = time.monotonic() + 5
    while (left := [t for t in threading.enumerate() if t not in before and t.is_alive()]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert left == [], [t.name for t in left]
