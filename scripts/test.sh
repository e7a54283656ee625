#!/usr/bin/env bash
# The whole test suite (README: "run the tests"). Installs what it needs on a fresh Debian
# machine: systemd's tools for the unit check. Runs unit + integration tests (both IO drivers,
# real binary on 127.0.0.1 port 0), then `systemd-analyze verify` of systemd/dcsd.service.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (stable) first" >&2
  exit 1
fi
if ! command -v systemd-analyze >/dev/null; then
  echo "== installing systemd's tools (for systemd-analyze verify)"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q systemd
fi

echo "== cargo test (unit, integration: io_uring and epoll)"
cargo test --all-targets

echo "== systemd unit"
bash scripts/verify-systemd.sh target/debug/dcsd
