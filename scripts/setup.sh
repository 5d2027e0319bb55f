#!/usr/bin/env bash
# Installs what is missing on a fresh Debian 12 machine (as root), builds and
# installs the extension, and makes the test virtualenv.  Idempotent.  Never
# creates or starts a system cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  postgresql-15 postgresql-contrib postgresql-server-dev-15 postgresql-plpython3-15
  postgresql-15-cron libkrb5-dev make gcc python3-pip python3-venv
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  # no cluster of our own on 5432: the packages must not create or start one
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/pgsm-no-main.conf
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
fi

PG_BINDIR=$(pg_config --bindir)
export PATH="$PG_BINDIR:$PATH"

echo "== building and installing pg_stat_monitor"
make -s PG_CONFIG=pg_config >/dev/null
make -s install >/dev/null

# the test tools, in a virtualenv of the project (readable by the postgres user)
if [ ! -x .venv/bin/pytest ] || ! cmp -s pyproject.toml .venv/.pyproject.toml; then
  echo "== preparing .venv"
  /usr/bin/python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' >/dev/null
  cp pyproject.toml .venv/.pyproject.toml
fi

# servers refuse to run as root: the project must be reachable by postgres
if ! runuser -u postgres -- test -r README.md; then
  echo "the postgres user cannot read $(pwd): place the project where it can" >&2
  exit 1
fi
