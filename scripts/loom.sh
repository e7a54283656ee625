#!/usr/bin/env bash
# loom model tests of the profile table's lock-free core (docs/development.md §10.3), preemption-bounded so
# the run takes a few minutes on 2 cores. `--cfg crossbeam_loom` turns on crossbeam-epoch's
# loom build (enabled by the cfg(loom) dependency in Cargo.toml), so the epoch collector is
# part of the model. A separate target dir keeps the normal build cache intact.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom --cfg crossbeam_loom"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"
exec cargo test --release --lib "$@" table::
