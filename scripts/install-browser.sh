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

source "$(dirname "$0")/apt.sh"
need_root install-browser
$SUDO apt-get update
$SUDO apt-get install -y chromium chromium-driver

/usr/bin/chromedriver --version
echo "install-browser: done"
