#!/usr/bin/env bash
# Install the database engines the cluster-mode tests start privately (tests/system/engines.rs):
# PostgreSQL from Debian's packages. Idempotent: installs only what is missing. The package's
# own cluster and service are not used; the tests run initdb in a temporary directory and
# start their own server on a Unix socket there.
#
#   bash scripts/install-engines.sh
#
# Needs root (or sudo) and apt-get.
set -euo pipefail

have_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null
}

if have_postgres; then
  echo "install-engines: PostgreSQL already installed"
  exit 0
fi

source "$(dirname "$0")/apt.sh"
need_root install-engines
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends postgresql </dev/null
have_postgres
echo "install-engines: PostgreSQL installed"
