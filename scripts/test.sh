#!/usr/bin/env bash
# Install from scratch (idempotent) and run the whole test suite against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 DO_NOT_TRACK=1
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export AESCOT_LABEL_STUDIO_BIN="$PWD/.venv-labelstudio/bin/label-studio"
export AESCOT_REQUIRE_LABEL_STUDIO=1  # a missing server fails the run instead of skipping
exec .venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
