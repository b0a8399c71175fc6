#!/usr/bin/env bash
# Install everything aescot needs, from scratch, idempotently:
#   .venv                 the library, CLI, Prefect, diffusers (CPU torch) and dev tools
#   .venv-labelstudio     the Label Studio server (heavy, own pins; kept apart from the library)
#   chromium              (Debian, only when root and missing) for the labeling-page render test
#   postgresql            (Debian, only when root and missing) for Label Studio on PostgreSQL tests
# Re-running is fast: each venv is rebuilt only when its inputs change.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

stamp_ok() { [ -f "$1/.aescot-stamp" ] && [ "$(cat "$1/.aescot-stamp")" = "$2" ]; }

main_key=$(sha256sum pyproject.toml | cut -c1-16)
if ! stamp_ok .venv "$main_key"; then
  echo "==> installing aescot into .venv"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  # torch first: the CPU wheel on this machine; any other spec pulls a multi-GB CUDA build.
  .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q -e ".[dev]"
  echo "$main_key" > .venv/.aescot-stamp
fi

ls_key="label-studio==1.23.2"
if ! stamp_ok .venv-labelstudio "$ls_key"; then
  echo "==> installing the Label Studio server into .venv-labelstudio"
  [ -x .venv-labelstudio/bin/python ] || "$PY" -m venv .venv-labelstudio
  .venv-labelstudio/bin/pip install -q --upgrade pip
  .venv-labelstudio/bin/pip install -q "$ls_key"
  echo "$ls_key" > .venv-labelstudio/.aescot-stamp
fi

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing Debian chromium (for the labeling-page render test)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: chromium could not be installed; the render test will be skipped (and fail in CI)"
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1 \
   && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing Debian postgresql (for the Label Studio on PostgreSQL tests)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "warning: postgresql could not be installed; its tests will be skipped (and fail in CI)"
fi
