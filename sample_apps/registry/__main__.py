"""``python -m sample_apps.registry [port]``: the registry on http://127.0.0.1 with the demo
participants (fresh keys on every start)."""

from __future__ import annotations

import sys

from werkzeug.serving import run_simple

from sample_apps.config import make_demo_config

from . import create_app


def main(port: int = 8444) -> None:
    demo = make_demo_config()
    for p in demo.registry["participants"]:
        print(f"http://127.0.0.1:{port}/participant-roles/{p['participant_id']}")
    run_simple("127.0.0.1", port, create_app(demo.registry))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8444)
