#!/usr/bin/env bash
# The whole test suite (README: "run the tests"). Installs what it needs on a fresh Debian
# machine: systemd's tools for the unit check, curl, openssl and chromium for the TLS tests. Runs unit + integration tests (both IO drivers,
# real binary on 127.0.0.1 port 0); where it may (root, Linux >= 6.6), the ignored fallback test
# that sets the machine-wide kernel.io_uring_disabled sysctl, after the rest, so none of this
# run's daemons is running meanwhile; then `systemd-analyze verify` of systemd/dcsd.service.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (stable) first" >&2
  exit 1
fi
# systemd's tools for the unit check; curl, openssl and Debian's chromium for tests/tls.rs (HTTPS
# clients, an RSA key, a real browser). A browser or client that cannot be installed makes its
# test print SKIPPED; the rest of the suite runs.
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
  echo "== installing ${need[*]}"
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"; }; then
    echo "== could not install all of ${need[*]}: tests that need a missing tool say SKIPPED"
  fi
fi

echo "== cargo test (unit, integration: io_uring and epoll)"
cargo test --all-targets

# The sysctl test is #[ignore]d in `cargo test`: it needs root, and the sysctl is machine-wide.
sysctl=/proc/sys/kernel/io_uring_disabled
if [ ! -e "$sysctl" ]; then
  echo "== SKIPPED driver_fallback sysctl test: no $sysctl (Linux < 6.6); the seccomp fallback tests ran"
elif [ ! -w "$sysctl" ]; then
  echo "== SKIPPED driver_fallback sysctl test: $sysctl not writable (not root, or /proc/sys read-only); the seccomp fallback tests ran"
else
  echo "== cargo test --test driver_fallback -- --ignored (sets kernel.io_uring_disabled for a moment)"
  cargo test --test driver_fallback -- --ignored
fi

echo "== systemd unit"
bash scripts/verify-systemd.sh target/debug/dcsd
