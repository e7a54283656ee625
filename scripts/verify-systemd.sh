#!/usr/bin/env bash
# Check systemd/dcsd.service with `systemd-analyze verify`.
#
# usage: scripts/verify-systemd.sh [DCSD_BINARY]      (default: target/debug/dcsd)
#
# The unit is copied to a temporary directory with ExecStart= (and any other
# /usr/local/bin/dcsd reference) pointing at DCSD_BINARY, because verify checks
# that the executable exists. Fails (exit 1) if verify prints any warning or
# error about the unit, or exits non-zero. Installs systemd's tools if
# systemd-analyze is missing (Debian/Ubuntu, non-interactive).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UNIT="$REPO/systemd/dcsd.service"
BIN=${1:-$REPO/target/debug/dcsd}
[[ "$BIN" == /* ]] || BIN="$PWD/$BIN"

if [[ ! -x "$BIN" ]]; then
  echo "verify-systemd: $BIN does not exist or is not executable (build it first, or pass a path)" >&2
  exit 2
fi
[[ -f "$UNIT" ]] || { echo "verify-systemd: $UNIT missing" >&2; exit 2; }

if ! command -v systemd-analyze >/dev/null; then
  echo "verify-systemd: installing systemd (for systemd-analyze)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends systemd >&2
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
sed -e "s|/usr/local/bin/dcsd|$BIN|g" "$UNIT" > "$TMP/dcsd.service"

echo "verify-systemd: $(systemd-analyze --version | head -1)"
echo "verify-systemd: unit $UNIT, ExecStart binary $BIN"
rc=0
# --man=no: do not look up the Documentation= pages. Run from the temp dir so
# that the unit is found by path; SYSTEMD_LOG_COLOR=0 keeps the output plain.
out=$(cd "$TMP" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$TMP/dcsd.service" 2>&1) || rc=$?
[[ -n "$out" ]] && printf '%s\n' "$out"

# Any line that mentions the unit (or its file) is a finding; lines about other
# units of this host (e.g. a broken unit that happens to be installed) are not.
findings=$(printf '%s\n' "$out" | grep -E 'dcsd\.service|dcsd' || true)
if (( rc != 0 )) || [[ -n "$findings" ]]; then
  echo "verify-systemd: FAIL (exit $rc)" >&2
  exit 1
fi
echo "verify-systemd: OK (no warnings or errors for dcsd.service)"
