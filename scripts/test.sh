#!/usr/bin/env bash
# Install from scratch (idempotent) and run the whole test suite against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 DO_NOT_TRACK=1
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export AESCOT_LABEL_STUDIO_BIN="$PWD/.venv-labelstudio/bin/label-studio"
# A real part that is absent (Label Studio, Chromium, the S3 server) skips locally and fails in CI:
# .ci/run sets CI=true (tests/realparts.py). A part that is installed but does not start always fails.

# Lint first: a formatting or lint error fails the run before any test starts (CI runs this script).
echo "==> ruff format --check . && ruff check .  (ruff $(.venv/bin/ruff --version | cut -d' ' -f2))"
if ! .venv/bin/ruff format --check .; then
  echo "error: ruff format would reformat the files listed above; run: .venv/bin/ruff format ." >&2
  exit 1
fi
if ! .venv/bin/ruff check .; then
  echo "error: ruff check found the problems above; run: .venv/bin/ruff check --fix . (then fix the rest by hand)" >&2
  exit 1
fi

# In parallel (pytest-xdist): AESCOT_TEST_WORKERS workers (default: one per core; 0 = one process).
# --dist loadgroup keeps each group of server tests in one worker (tests/conftest.py): Prefect starts
# once per run, Label Studio at most twice. Paths and options are passed on (no path: all of tests/);
# the ten slowest tests are printed at the end.
workers=${AESCOT_TEST_WORKERS:-auto}
parallel=()
[ "$workers" = 0 ] || parallel=(-n "$workers" --dist loadgroup)
exec .venv/bin/python -m pytest -q -p no:cacheprovider "${parallel[@]}" --durations=10 "$@"
