#!/usr/bin/env bash
# Install the headless browser the end-to-end tests (tests/browser/) drive:
# Chromium and its WebDriver server, chromedriver, from Debian's packages.
# Idempotent: does nothing when /usr/bin/chromedriver is already there.
#
#   bash scripts/install-browser.sh
#
# Needs root (or sudo) and apt-get.
set -euo pipefail

if [[ -x /usr/bin/chromedriver && -x /usr/bin/chromium ]]; then
  echo "install-browser: chromium and chromedriver already installed"
  exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-browser: must run as root (or with sudo available)" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium chromium-driver

/usr/bin/chromedriver --version
echo "install-browser: done"
