#!/usr/bin/env bash
# Install axe-core, the accessibility checker the browser tests (tests/browser/) run on every
# screen, from the npm registry into target/axe/ (no package.json in the repository: it is a
# test tool, not part of Hearth). Idempotent. Needs Node.js and npm (installed from Debian's
# packages when missing).
#
#   bash scripts/install-axe.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.10.3
DEST=target/axe
if [[ -f "$DEST/node_modules/axe-core/axe.min.js" ]] \
  && grep -q "\"version\": \"$VERSION\"" "$DEST/node_modules/axe-core/package.json"; then
  echo "install-axe: axe-core $VERSION already installed"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  if [[ "$(id -u)" -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y nodejs npm
fi

mkdir -p "$DEST"
npm install --prefix "$DEST" --no-audit --no-fund --no-save "axe-core@$VERSION"
test -f "$DEST/node_modules/axe-core/axe.min.js"
echo "install-axe: axe-core $VERSION in $DEST"
