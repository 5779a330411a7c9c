#!/usr/bin/env bash
# Supply-chain policy check: licenses, banned/duplicate crates and allowed sources, as set in
# deny.toml. Advisories are not checked (they need a network copy of the advisory database).
#
# Installs cargo-deny first when it is missing: `cargo install cargo-deny --locked` compiles it
# from source, which takes about 7 minutes on a 2-core machine; later runs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deny --version >/dev/null 2>&1; then
  echo "cargo-deny not found; installing it (cargo install cargo-deny --locked)..." >&2
  cargo install cargo-deny --locked
fi

cargo deny --version
exec cargo deny --workspace check bans licenses sources
