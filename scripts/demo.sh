#!/usr/bin/env bash
# Install (idempotent) and run the whole job offline on the embedded defaults: local files under
# ./demo-data, SQLite, an ephemeral Prefect API, a local Label Studio on 127.0.0.1:8080, three
# simulated annotators, a stand-in teacher on loopback, the filter at 0.8, the Parquet export
# and `aescot eval`. Run it again: it repeats nothing (and picks up what people labelled by hand).
# Options are passed to `python -m flows.demo` (see --help), e.g. --sources my_photos/ --annotators 0.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
# a busy machine needs longer than Prefect's 20 s to start the ephemeral API (the demo retries once)
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=${PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS:-180}
export AESCOT_LABEL_STUDIO_BIN=${AESCOT_LABEL_STUDIO_BIN:-$PWD/.venv-labelstudio/bin/label-studio}
exec .venv/bin/python -m flows.demo "$@"
