#!/usr/bin/env bash
# Install the engines the cluster-mode tests start privately (tests/system/engines.rs):
# PostgreSQL and Redis from Debian's packages. Idempotent: installs only what is missing. The
# packages' own services are not used; the tests start their own servers on Unix sockets in
# temporary directories.
#
#   bash scripts/install-engines.sh
#
# Needs root (or sudo) and apt-get.
set -euo pipefail

have_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null
}

have_redis() {
  command -v redis-server >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
have_redis || missing+=(redis-server)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-engines: PostgreSQL and Redis already installed"
  exit 0
fi

source "$(dirname "$0")/apt.sh"
need_root install-engines
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
have_postgres
have_redis
# Debian starts the packaged Redis as a service where there is an init system; the tests do
# not use it.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
  $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
echo "install-engines: installed ${missing[*]}"
