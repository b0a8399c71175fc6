#!/usr/bin/env bash
# Install (idempotent) and run the whole job on the embedded defaults: local files under
# ./demo-data, SQLite, an ephemeral Prefect API and a local Label Studio on 127.0.0.1:8080.
# Run it again after labelling: it collects the labels and carries on to export.
# Options are passed to `python -m flows.demo` (see --help), e.g. --sources my_photos/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
export AESCOT_LABEL_STUDIO_BIN=${AESCOT_LABEL_STUDIO_BIN:-$PWD/.venv-labelstudio/bin/label-studio}
exec .venv/bin/python -m flows.demo "$@"
