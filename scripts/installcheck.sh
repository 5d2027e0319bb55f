#!/usr/bin/env bash
# `make installcheck`: the whole test suite against the build already installed for the
# pg_config on PATH (or $PG_CONFIG). No apt, no install; creates .venv with the test
# dependencies if it is missing. The tests start their own servers on free ports under /tmp;
# run as root, the servers run as the postgres user (the directory must be readable by it).
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$("$PG_CONFIG" --bindir)
if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/pg_stat_monitor.control" ]; then
  echo "pg_stat_monitor is not installed for $PG_CONFIG: run make install first" >&2
  exit 1
fi
export PATH="$bindir:$PATH"
if [ ! -x .venv/bin/pytest ]; then
  /usr/bin/python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' >/dev/null
fi
if [ "$(id -u)" = 0 ]; then
  exec runuser -u postgres -- env PATH="$PATH" HOME=/tmp .venv/bin/python -m pytest -q "$@" tests
fi
exec .venv/bin/python -m pytest -q "$@" tests
