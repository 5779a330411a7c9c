#!/usr/bin/env bash
# Install the reverse proxies that tests/system/reverse_proxy.rs runs in front of Hearth, using the
# snippets in docs/: nginx, and Caddy when the distribution packages it (Debian 12 does).
# Idempotent: installs only what is missing. The packages' own services are not needed by the
# tests, which start their own nginx and Caddy on free ports.
#
#   bash scripts/install-proxies.sh
#
# Needs root (or sudo) and apt-get.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }

missing=()
have nginx || missing+=(nginx)
have caddy || missing+=(caddy)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-proxies: nginx and caddy already installed"
  exit 0
fi

source "$(dirname "$0")/apt.sh"
need_root install-proxies
$SUDO apt-get update
packages=()
for p in "${missing[@]}"; do
  if [[ "$p" == caddy ]] && ! apt-cache show caddy >/dev/null 2>&1; then
    echo "install-proxies: this distribution has no caddy package; the Caddy test is skipped"
    continue
  fi
  packages+=("$p")
done
if [[ ${#packages[@]} -gt 0 ]]; then
  $SUDO apt-get install -y --no-install-recommends "${packages[@]}" </dev/null
fi

export PATH="$PATH:/usr/sbin:/usr/local/sbin"
if have nginx; then nginx -v 2>&1; else echo "install-proxies: nginx missing" >&2; exit 1; fi
if have caddy; then caddy version; fi
echo "install-proxies: done"
