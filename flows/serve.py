"""Serve ``build-screening-set`` as a deployment from this process (no work pool needed).

    python -m flows.serve [--name local] [--cron "0 * * * *"]

then, from anywhere that reaches the same Prefect API:

    prefect deployment run 'build-screening-set/local' -p root=/data/screening -p 'sources=["/data/incoming"]' --watch

For work pools (process, Docker, Kubernetes, GPU machines) use ``prefect deploy`` with
``prefect.yaml`` instead; the flow and its parameters are the same.
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
