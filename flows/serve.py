"""Serve ``build-screening-set`` as a deployment from this process (no work pool needed).

    python -m flows.serve [--name local] [--cron "0 * * * *"]

It needs a Prefect server to register with (``PREFECT_API_URL``; see the README's "The flow and its
deployment" for starting one), then, from anywhere that reaches the same API:

    prefect deployment run build-screening-set/local --watch -p root=deploy-data -p 'sources=["demo-data/incoming"]'

For work pools (process, Docker, Kubernetes, GPU machines) use ``prefect deploy`` with
``prefect.yaml`` instead (the README's block, run as pasted by tests/test_readme.py); the flow and
its parameters are the same.
"""

from __future__ import annotations

import argparse

from flows.build_screening_set import build_screening_set


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="local", help="deployment name (default: local)")
    ap.add_argument("--cron", default=None, help="optional schedule, e.g. '0 * * * *' to advance hourly")
    ap.add_argument("--limit", type=int, default=1, help="flow runs at once from this server (default 1)")
    args = ap.parse_args()
    build_screening_set.serve(
        name=args.name,
        cron=args.cron,
        limit=args.limit,
        description="Advance the aescot screening dataset by every ready stage.",
    )


if __name__ == "__main__":
    main()
