#!/usr/bin/env bash
# Installs what the load benchmark (benches/load.sh) needs on a fresh Debian or Ubuntu machine,
# then builds the release binaries it runs. Safe to run again: it installs only what is missing.
#
# usage: bash benches/install.sh [--no-build]
#   apt:   wrk, nginx-light (nginx with empty_gif; plain nginx where the distribution has no
#          -light package), time (/usr/bin/time -v), curl, iproute2 (ss), procps (pgrep),
#          python3 (the report)
#   cargo: oha (`cargo install oha --locked`, about 4 minutes of compiling on 2 cores)
#   build: cargo build --release --bin dcsd --example minpixel, and --bin dcsd-partner-sim
#          once the crate has it
#   --no-build  install the tools only (what load.sh asks for; it builds what it runs itself)
# Needs root or sudo for apt, and Rust (rustup) for oha and the build.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"

build=1
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

# ---------------------------------------------------------------- apt packages
pkgs=()
command -v wrk >/dev/null || pkgs+=(wrk)
command -v nginx >/dev/null || pkgs+=(nginx-light)
[[ -x /usr/bin/time ]] || pkgs+=(time)
command -v curl >/dev/null || pkgs+=(curl)
command -v ss >/dev/null || pkgs+=(iproute2)
command -v pgrep >/dev/null || pkgs+=(procps)
command -v taskset >/dev/null || pkgs+=(util-linux)
command -v python3 >/dev/null || pkgs+=(python3)
if ((${#pkgs[@]})); then
  echo "install.sh: apt-get install ${pkgs[*]}" >&2
  as_root apt-get update -q
  if [[ " ${pkgs[*]} " == *" nginx-light "* ]] && ! apt-cache show nginx-light >/dev/null 2>&1; then
    pkgs=("${pkgs[@]/nginx-light/nginx}")   # newer releases fold the modules into nginx
  fi
  # Only the nginx binary is used (run in the foreground by the benchmark); where the package's
  # own service starts, it listens on port 80 and is left alone.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
fi

# ---------------------------------------------------------------- oha
if ! command -v oha >/dev/null; then
  command -v cargo >/dev/null || { echo "install.sh: cargo not found (install Rust with rustup)" >&2; exit 1; }
  echo "install.sh: cargo install oha --locked (a few minutes)" >&2
  cargo install oha --locked
fi

# ---------------------------------------------------------------- release build
# Two invocations: building an example enables the dev-dependencies' features, and the dcsd
# binary must be the one `cargo build --release` makes.
if ((build)); then
  bins=(--bin dcsd)
  if cargo metadata --no-deps --format-version 1 --manifest-path "$REPO/Cargo.toml" 2>/dev/null |
    grep -q '"name":"dcsd-partner-sim"'; then
    bins+=(--bin dcsd-partner-sim)
  else
    echo "install.sh: this checkout has no dcsd-partner-sim binary yet (benches/load.sh --partner needs it)" >&2
  fi
  echo "install.sh: cargo build --release ${bins[*]}; cargo build --release --example minpixel" >&2
  (cd "$REPO" && cargo build --release "${bins[@]}" && cargo build --release --example minpixel)
fi

# ---------------------------------------------------------------- report
echo "---- benchmark tools"
(wrk -v 2>&1 || true) | head -1
nginx -v 2>&1
if nginx -V 2>&1 | grep -q -- --without-http_empty_gif; then echo "nginx: empty_gif NOT built in"; else echo "nginx: empty_gif available"; fi
oha --version
/usr/bin/time --version 2>&1 | head -1
if ((build)); then
  target_dir=${CARGO_TARGET_DIR:-$REPO/target}
  ls -l "$target_dir/release/dcsd" "$target_dir/release/examples/minpixel"
  [[ -x "$target_dir/release/dcsd-partner-sim" ]] && ls -l "$target_dir/release/dcsd-partner-sim"
fi
exit 0
