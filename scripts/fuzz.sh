#!/usr/bin/env bash
# Short fuzzing run of every target in fuzz/ (default 20 s each; FUZZ_SECONDS to change).
# Installs cargo-fuzz when missing. Runs on the stable toolchain through RUSTC_BOOTSTRAP=1,
# since cargo-fuzz passes nightly-only -Z flags (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${FUZZ_SECONDS:-20}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz not found; installing it (cargo install cargo-fuzz --locked)..." >&2
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
for target in client_frame config_toml asset_path; do
  scratch=$(mktemp -d)
  echo "fuzz: $target for ${SECONDS_EACH}s"
  status=0
  cargo fuzz run "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$scratch.log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|==|SUMMARY|Done)" \
    "$scratch.log" || tail -20 "$scratch.log"
  rm -rf "$scratch" "$scratch.log"
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target failed (exit $status); see fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
done
