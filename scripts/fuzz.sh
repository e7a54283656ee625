#!/usr/bin/env bash
# Builds the fuzz targets with SanitizerCoverage on stable Rust (the flags cargo-fuzz passes;
# `--target` keeps them off build scripts) and runs each for SECONDS (default 60) from its
# seeds in fuzz/seeds/<target>. A crash fails the script and leaves the input in fuzz/artifacts.
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}; shift || true
targets=("$@"); [[ ${#targets[@]} -gt 0 ]] || targets=(request_head chunked_body pairs tc_string trait_rule segment_rule partner_response redirect json_escape x509 eventlog_record)
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
cargo build --manifest-path fuzz/Cargo.toml --bins --target "$triple" --target-dir fuzz/target/cov
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" fuzz/artifacts
  echo "-- $t: ${secs}s"
  log="fuzz/artifacts/$t.log"
  if ! timeout $((secs + 60)) "fuzz/target/cov/$triple/debug/$t" -max_total_time="$secs" -rss_limit_mb=2048 \
      -artifact_prefix=fuzz/artifacts/ "fuzz/corpus/$t" "fuzz/seeds/$t" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz target $t failed (log: $log)" >&2
    exit 1
  fi
  grep -E "DONE|^Done" "$log" | tail -n 2
done
