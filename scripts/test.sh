#!/usr/bin/env bash
# Runs the whole test suite as the unprivileged postgres user; the tests start
# their own servers on free ports under /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(pg_config --bindir):$PATH"
exec runuser -u postgres -- env PATH="$PATH" HOME=/tmp \
  .venv/bin/python -m pytest -q "$@" tests
