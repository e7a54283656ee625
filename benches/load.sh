#!/usr/bin/env bash
# Daemon-level load benchmark: dcsd against reference servers ("anchors") in ONE run, printed as
# ONE table with ratios. Everything it uses is in this repository (benches/README.md).
#
# usage: benches/load.sh [--quick] [--pixel] [--partner|--tls]   (from anywhere in the repository)
#   (default)  anchor A: dcsd's /event against nginx empty_gif (1 worker) and minpixel
#              (examples/minpixel.rs: monoio, 1 thread, COOP_TASKRUN): wrk c64 max throughput,
#              oha at PIXEL_RATES latency-corrected, connection per request (wrk, oha CLOSE_RATE)
#   --partner  anchor B: requests that wait on a real-time partner. The partner stand-in
#              (dcsd-partner-sim, on the load generator's CPU) answers after each of
#              PARTNER_DELAYS_MS; measured: the stand-in directly ("direct"), nginx proxy_pass
#              to it over an upstream keep-alive pool ("nginx"), and dcsd in JSON mode with a
#              generated taxonomy whose real-time data sources call it ("dcsd"; "dcsd-pN" for
#              N sources per request), at PARTNER_RATES with PARTNER_CONNS connections; then
#              dcsd with a partner that hangs ("hang"), at PARTNER_HANG_RATE
#   --tls      anchor A over HTTPS: dcsd's tls_listen against nginx empty_gif with `listen ssl`
#              (benches/anchors/nginx-pixel-tls.conf.in), both with one self-signed ECDSA P-256
#              certificate made for the run, 1 worker each: wrk c64 keep-alive and
#              Connection: close; new handshakes with `openssl s_time -new` and resumed ones
#              with `-reuse` (server µs per connection); memory per idle TLS connection
#              (TLS_IDLE_CONNS connections, each after one request; RSS growth / connection).
#              Extra table: RUN_DIR/tls.md
#   --eventlog anchor A with the event log: dcsd with the log off ("dcsd"), on with
#              fsync = "interval" ("log-interval") and with fsync = "always" ("log-always"),
#              the log in RUN_DIR/eventlog-*, beside nginx empty_gif; ratios to plain dcsd.
#              The log's fdatasync latency (dcsd_eventlog_fsync_seconds) goes to RUN_DIR/eventlog.md
#   --quick    3 s runs, 1 repeat (a smoke test); default 10 s x 3 (pixel: about 10 min)
#   --pixel    pixel-mode path (no d_rtbd=json) instead of JSON mode
# environment:
#   DCSD_BIN=path      use this binary (no build); default: cargo build --release
#   DCSD_BASELINE_BIN=path  also measure this (older) dcsd binary in the same run, as server
#                      "base", with the columns base and dcsd/base
#   DCSD_ARGS="..."    extra dcsd arguments (e.g. --taxonomy big.json), for dcsd and base
#   EXTRA_HEADER="Name: value"  one more header on every request (e.g. a demdex cookie)
#   URL_PATH=/...      request path (default /event?d_sid=1234&c_key=val&d_rtbd=json)
#   HOST_HEADER=name   Host header of every request (default localhost, a host of the built-in
#                      demo taxonomy and of the --partner taxonomy; empty = 127.0.0.1:PORT)
#   LOAD_ONLY="..."    subset of servers: pixel "nginx minpixel dcsd" (default all);
#                      partner "direct nginx dcsd hang" (default all)
#   PARTNERS_PER_REQUEST="1 2 4"  real-time sources per request, one dcsd per value (default 1)
#   PARTNER_BIN=path, PARTNER_ARGS_STYLE=listen|addr  another partner stand-in (default: the
#                      crate's dcsd-partner-sim, built; `addr` passes --addr instead of --listen);
#                      PARTNER_EXTRA_ARGS="..." more stand-in arguments
#   MINPIXEL_BIN=path  another minpixel (default: the crate's example, built)
#   DURATION, WARMUP, REPEATS, CONNS, PIXEL_RATES, CLOSE_RATE, PARTNER_*: benches/harness/bench.env
#   BENCH_WORK (default /tmp/dcsd-bench), RUN_DIR (default $BENCH_WORK/load-<UTC>)
#   MIMALLOC_ALLOW_THP (default 0, as in the systemd unit; 1 measures with huge pages)
#
# Every server binds 127.0.0.1 on a free port and runs on CPU 0 (taskset -c 0); the load
# generator runs on CPU 1. Servers are started by this script, waited for (port, HTTP or ready
# line) and stopped by PID; each load run is bounded by `timeout`. Raw outputs, configurations,
# runs.jsonl, summary.md (medians with min-max) and table.md go to RUN_DIR. Server µs/request =
# the server's time on CPU over a run (/proc/PID/task/*/schedstat) / completed requests.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR=$REPO/$TARGET_DIR
# As the systemd unit: no transparent huge pages for mimalloc (README "Performance").
export MIMALLOC_ALLOW_THP=${MIMALLOC_ALLOW_THP:-0}

MODE=pixel
URL_PATH=${URL_PATH:-/event?d_sid=1234&c_key=val&d_rtbd=json}
for a in "$@"; do
  case "$a" in
    --quick) export QUICK=1 ;;
    --pixel) URL_PATH='/event?d_sid=1234&c_key=val' ;;
    --partner) MODE=partner ;;
    --tls) MODE=tls ;;
    --eventlog) MODE=eventlog ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $a (see --help)" >&2; exit 2 ;;
  esac
done
HOST_HEADER=${HOST_HEADER-localhost}
if [[ $MODE == pixel ]]; then
  LOAD_ONLY=${LOAD_ONLY:-"nginx minpixel dcsd"}
elif [[ $MODE == eventlog ]]; then
  LOAD_ONLY=${LOAD_ONLY:-"nginx dcsd log-interval log-always"}
elif [[ $MODE == tls ]]; then
  LOAD_ONLY=${LOAD_ONLY:-"nginx dcsd"}
else
  LOAD_ONLY=${LOAD_ONLY:-"direct nginx dcsd hang"}
fi
want() { [[ " $LOAD_ONLY " == *" $1 "* ]]; }
# nginx needs more descriptors than the usual 1024 at high connection counts.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------------------ harness
# lib.sh: bench.env (environment overrides win), QUICK, RUN_DIR, servers by PID, load runs.
export BENCH_WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/dcsd-bench}
export RUN_DIR=${RUN_DIR:-$BENCH_WORK/load-$(date -u +%Y%m%dT%H%M%SZ)}
# shellcheck source=harness/lib.sh
source "$REPO/benches/harness/lib.sh"
# End the run on INT/TERM; the EXIT trap of lib.sh stops the servers still running, by PID.
trap 'exit 130' INT
trap 'exit 143' TERM

missing=$(tools_missing)
if [[ -n "$missing" ]]; then
  echo "missing: $missing; running benches/install.sh --no-build" >&2
  bash "$REPO/benches/install.sh" --no-build >&2
  OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
  missing=$(tools_missing)
  [[ -z "$missing" ]] || { echo "still missing after benches/install.sh: $missing" >&2; exit 1; }
fi

# ------------------------------------------------------------------ binaries
uses_dcsd() {
  case $MODE in
    partner) want dcsd || want hang ;;
    eventlog) want dcsd || want log-interval || want log-always ;;
    *) want dcsd ;;
  esac
}
# Binaries and examples are built by separate cargo invocations: building an example enables
# the dev-dependencies' features, and dcsd must be the same binary as `cargo build --release`.
build=() build_examples=()
if uses_dcsd; then
  if [[ -n "${DCSD_BIN:-}" ]]; then
    [[ -x "$DCSD_BIN" ]] || { echo "DCSD_BIN=$DCSD_BIN is not an executable file" >&2; exit 2; }
  else
    build+=(--bin dcsd)
    DCSD_BIN=$TARGET_DIR/release/dcsd
  fi
fi
if [[ $MODE == pixel ]] && want minpixel; then
  if [[ -n "${MINPIXEL_BIN:-}" ]]; then
    [[ -x "$MINPIXEL_BIN" ]] || { echo "MINPIXEL_BIN=$MINPIXEL_BIN is not an executable file" >&2; exit 2; }
  else
    build_examples+=(--example minpixel)
    MINPIXEL_BIN=$TARGET_DIR/release/examples/minpixel
  fi
fi
PARTNER_ARGS_STYLE=${PARTNER_ARGS_STYLE:-listen}
if [[ $MODE == partner ]]; then
  case "$PARTNER_ARGS_STYLE" in listen|addr) ;; *) echo "PARTNER_ARGS_STYLE must be listen or addr" >&2; exit 2 ;; esac
  if [[ -n "${PARTNER_BIN:-}" ]]; then
    [[ -x "$PARTNER_BIN" ]] || { echo "PARTNER_BIN=$PARTNER_BIN is not an executable file" >&2; exit 2; }
  else
    if ! (cd "$REPO" && cargo metadata --no-deps --format-version 1 2>/dev/null) | grep -q '"name":"dcsd-partner-sim"'; then
      echo "this checkout has no dcsd-partner-sim binary: set PARTNER_BIN to a partner stand-in" \
        "(PARTNER_ARGS_STYLE=addr if it takes --addr instead of --listen)" >&2
      exit 2
    fi
    build+=(--bin dcsd-partner-sim)
    PARTNER_BIN=$TARGET_DIR/release/dcsd-partner-sim
  fi
fi
for targets in "${build[*]}" "${build_examples[*]}"; do
  [[ -n "$targets" ]] || continue
  log "building: cargo build --release $targets"
  # shellcheck disable=SC2086  # one word per argument
  (cd "$REPO" && cargo build --release $targets >&2)
done
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
[[ -n "${DCSD_BIN:-}" ]] && DCSD_BIN=$(abs "$DCSD_BIN")
[[ -n "${DCSD_BASELINE_BIN:-}" ]] && {
  [[ -x "$DCSD_BASELINE_BIN" ]] || { echo "DCSD_BASELINE_BIN=$DCSD_BASELINE_BIN is not an executable file" >&2; exit 2; }
  DCSD_BASELINE_BIN=$(abs "$DCSD_BASELINE_BIN")
}

describe_env
HDR=()
[[ -n "$HOST_HEADER" ]] && HDR=(-H "Host: $HOST_HEADER")
[[ -n "${EXTRA_HEADER:-}" ]] && HDR+=(-H "$EXTRA_HEADER")
read -r -a DCSD_EXTRA_ARGS <<< "${DCSD_ARGS:-}"

# ------------------------------------------------------------------ common steps

# sample NAME URL: one request kept for the record (status, headers, body), before the load.
sample() {
  local name=$1 url=$2 h="$RUN_DIR/raw/$1.sample.headers" b="$RUN_DIR/raw/$1.sample.body"
  curl -s -k --max-time 5 -D "$h" -o "$b" "${HDR[@]}" "$url" || true
  log "  sample: $(head -1 "$h" 2>/dev/null | tr -d '\r'), $(wc -c < "$b" 2>/dev/null || echo 0) body bytes"
  grep -qE '^HTTP/1\.[01] 200' "$h" 2>/dev/null || log "  WARNING: $name did not answer 200"
  grep -i '^x-error' "$h" 2>/dev/null | tr -d '\r' | sed 's/^/  WARNING: /' >&2 || true
}

# start_dcsd LABEL BIN [ARGS...]: dcsd on SERVER_CPU, 1 worker, a free port (PORT); waits for
# /healthz. Sets SRV_PID.
start_dcsd() {
  local label=$1 bin=$2
  shift 2
  free_port
  log "start $label ($bin), 1 thread, 127.0.0.1:$PORT"
  start_server "$label" "$SERVER_CPU" "$bin" --listen "127.0.0.1:$PORT" --threads 1 "$@" "${DCSD_EXTRA_ARGS[@]}"
  wait_http "$SRV_PID" "$PORT" /healthz || { cat "$(server_log "$label")" >&2; exit 1; }
  "$bin" --version > "$RUN_DIR/conf/$label.version" 2>&1 || true
}

# stop_dcsd LABEL: stop it, and point at its log if it logged errors.
stop_dcsd() {
  stop_server "$1" "$SRV_PID"
  if grep -qiE 'panicked|ERROR' "$(server_log "$1")"; then
    log "WARNING: $1 logged errors: see $(server_log "$1")"
  fi
}

# ------------------------------------------------------------------ anchor A: pixel

# measure_pixel NAME PORT: the anchor-A load shapes against the running server SRV_PID.
measure_pixel() {
  local name=$1 url="http://127.0.0.1:$2$URL_PATH" q
  sample "$name" "$url"
  mem_snapshot "$name" "$SRV_PID" idle
  SRV_PIDS=$(tree_pids "$SRV_PID") EXTRA_PIDS=""
  META_ANCHOR=L META_SERVER=$name META_CASE=""
  META_CONN=keepalive
  series wrk "L-$name-ka-wrk" "$LOADGEN_CPU" "$url" "${HDR[@]}"
  for q in $PIXEL_RATES; do series oha "L-$name-ka-oha$q" "$LOADGEN_CPU" "$q" "$url" "${HDR[@]}"; done
  META_CONN=close
  series wrk "L-$name-close-wrk" "$LOADGEN_CPU" "$url" "${HDR[@]}" -H "Connection: close"
  series oha "L-$name-close-oha$CLOSE_RATE" "$LOADGEN_CPU" "$CLOSE_RATE" "$url" "${HDR[@]}" --disable-keepalive
  kill -0 "$SRV_PID" 2>/dev/null || log "  WARNING: $name exited during the load runs"
}

# nginx_pixel: anchor A's nginx empty_gif (1 worker) under measure_pixel.
nginx_pixel() {
  local conf
  free_port
  conf=$(render_nginx nginx-pixel.conf.in nginx 1 "$PORT")
  log "start nginx empty_gif, 1 worker, 127.0.0.1:$PORT"
  start_server nginx "$SERVER_CPU" nginx -c "$conf"
  wait_port "$SRV_PID" "$PORT"
  wait_http "$SRV_PID" "$PORT" /
  measure_pixel nginx "$PORT"
  stop_server nginx "$SRV_PID"
}

pixel_run() {
  log "load run (pixel anchors): $RUN_DIR  (DURATION=$DURATION REPEATS=$REPEATS WARMUP=$WARMUP; path $URL_PATH; Host ${HOST_HEADER:-<url>})"
  want nginx && nginx_pixel
  if want minpixel; then
    free_port
    log "start minpixel, 1 thread, coop, 127.0.0.1:$PORT"
    start_server minpixel "$SERVER_CPU" "$MINPIXEL_BIN" --addr "127.0.0.1:$PORT" --threads 1 --uring-flags coop
    wait_line "$SRV_PID" "$(server_log minpixel)" '^minpixel listening on'
    wait_http "$SRV_PID" "$PORT" /
    measure_pixel minpixel "$PORT"
    stop_server minpixel "$SRV_PID"
  fi
  if want dcsd; then
    start_dcsd dcsd "$DCSD_BIN"
    measure_pixel dcsd "$PORT"
    stop_dcsd dcsd
  fi
  if [[ -n "${DCSD_BASELINE_BIN:-}" ]]; then
    start_dcsd base "$DCSD_BASELINE_BIN"
    measure_pixel base "$PORT"
    stop_dcsd base
  fi
}

# ------------------------------------------------------------------ anchor A with the event log

# eventlog_run: plain dcsd, then dcsd logging with each fsync policy, on the same load shapes.
eventlog_run() {
  log "load run (event log): $RUN_DIR  (DURATION=$DURATION REPEATS=$REPEATS WARMUP=$WARMUP; path $URL_PATH)"
  local conf md=$RUN_DIR/eventlog.md policy name port
  want nginx && nginx_pixel
  if want dcsd; then
    start_dcsd dcsd "$DCSD_BIN"
    measure_pixel dcsd "$PORT"
    stop_dcsd dcsd
  fi
  echo "| server | fdatasync count | mean ms | records | dropped | bytes/record |" > "$md"
  echo "|---|---|---|---|---|---|" >> "$md"
  for policy in interval always; do
    name=log-$policy
    want "$name" || continue
    rm -rf "$RUN_DIR/eventlog-$policy"
    conf=$RUN_DIR/conf/$name.toml
    printf '[eventlog]\ndir = "%s"\nfsync = "%s"\n' "$RUN_DIR/eventlog-$policy" "$policy" > "$conf"
    start_dcsd "$name" "$DCSD_BIN" --config "$conf"
    port=$PORT
    measure_pixel "$name" "$port"
    curl -s "http://127.0.0.1:$port/metrics" > "$RUN_DIR/raw/$name.metrics" || true
    stop_dcsd "$name"
    python3 - "$RUN_DIR/raw/$name.metrics" "$name" >> "$md" <<'PY'
import sys
m = {}
for line in open(sys.argv[1]):
    if line.startswith("#") or " " not in line:
        continue
    k, v = line.rsplit(" ", 1)
    m[k] = float(v)
n = m.get("dcsd_eventlog_fsync_seconds_count", 0)
s = m.get("dcsd_eventlog_fsync_seconds_sum", 0)
rec = m.get("dcsd_eventlog_records_total", 0)
b = m.get("dcsd_eventlog_bytes_total", 0)
print(f"| {sys.argv[2]} | {n:.0f} | {1000 * s / n if n else 0:.3f} | {rec:.0f} | {m.get('eventlog_dropped_total', 0):.0f} | {b / rec if rec else 0:.0f} |")
PY
    rm -rf "$RUN_DIR/eventlog-$policy"
  done
}

# ------------------------------------------------------------------ anchor A over TLS

: "${TLS_IDLE_CONNS:=2000}"
TLS_MD=$RUN_DIR/tls.md

# wait_https PID PORT: until an HTTPS request to PORT answers 200 (30 s; any certificate).
wait_https() {
  wait_url "$1" "https://127.0.0.1:$2$URL_PATH" -k "${HDR[@]}"
}

# handshakes NAME PORT new|reuse: `openssl s_time` (one connection at a time, one request each,
# on LOADGEN_CPU) for DURATION; prints connections/s and the server's µs per connection.
handshakes() {
  local name=$1 port=$2 kind=$3 out="$RUN_DIR/raw/T-$1-$3.s_time.txt" c0 c1 n secs
  local pin
  pin=$(pin_prefix "$LOADGEN_CPU")
  # shellcheck disable=SC2086
  c0=$(cpu_ns $SRV_PIDS)
  # shellcheck disable=SC2086
  timeout "$RUN_TIMEOUT" $pin openssl s_time -connect "127.0.0.1:$port" "-$kind" -time "$(seconds "$DURATION")" \
    -www "$URL_PATH" > "$out" 2>&1 || true
  # shellcheck disable=SC2086
  c1=$(cpu_ns $SRV_PIDS)
  read -r n secs < <(sed -n 's/^\([0-9]*\) connections in \([0-9.]*\) real seconds.*/\1 \2/p' "$out" | tail -1)
  n=${n:-0} secs=${secs:-0}
  awk -v n="$n" -v s="$secs" -v c="$((c1 - c0))" -v name="$name" -v kind="$kind" 'BEGIN {
    printf "%s %s %d %.0f %.1f\n", name, kind, n, (s > 0 ? n / s : 0), (n > 0 ? c / n / 1000 : 0) }'
}

# idle_memory NAME PORT PID: RSS growth per idle TLS connection (kB), TLS_IDLE_CONNS of them.
idle_memory() {
  local name=$1 port=$2 pid=$3 out="$RUN_DIR/raw/T-$1-idle.txt" before after i
  before=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")
  timeout 300 python3 "$HARNESS_DIR/tls-idle.py" 127.0.0.1 "$port" "$TLS_IDLE_CONNS" "$URL_PATH" 5 > "$out" 2>&1 &
  local py=$!
  for ((i = 0; i < 2400; i++)); do
    grep -q '^open' "$out" 2>/dev/null && break
    kill -0 "$py" 2>/dev/null || break
    sleep 0.1
  done
  after=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")
  wait "$py" || true
  grep -q '^open' "$out" || { log "  WARNING: idle connections for $name failed: $(tail -1 "$out")"; echo "$name idle 0 0 0"; return; }
  awk -v n="$TLS_IDLE_CONNS" -v a="$before" -v b="$after" -v name="$name" \
    'BEGIN { printf "%s idle %d %d %.1f\n", name, a, b, (b - a) / n }'
}

# measure_tls NAME PORT: anchor A over HTTPS against the running server SRV_PID.
measure_tls() {
  local name=$1 port=$2 url="https://127.0.0.1:$2$URL_PATH"
  sample "$name" "$url"
  mem_snapshot "$name" "$SRV_PID" idle
  SRV_PIDS=$(tree_pids "$SRV_PID") EXTRA_PIDS=""
  META_ANCHOR=L META_SERVER=$name META_CASE=""
  META_CONN=keepalive
  series wrk "T-$name-ka-wrk" "$LOADGEN_CPU" "$url" "${HDR[@]}"
  META_CONN=close
  series wrk "T-$name-close-wrk" "$LOADGEN_CPU" "$url" "${HDR[@]}" -H "Connection: close"
  log "  openssl s_time -new / -reuse, ${DURATION} each"
  handshakes "$name" "$port" new >> "$TLS_MD.data"
  handshakes "$name" "$port" reuse >> "$TLS_MD.data"
  log "  $TLS_IDLE_CONNS idle TLS connections"
  # nginx: its one worker holds the connections.
  idle_memory "$name" "$port" "$(pgrep -P "$SRV_PID" | head -1 || echo "$SRV_PID")" >> "$TLS_MD.data"
  kill -0 "$SRV_PID" 2>/dev/null || log "  WARNING: $name exited during the load runs"
}

tls_run() {
  log "load run (TLS anchor): $RUN_DIR  (DURATION=$DURATION REPEATS=$REPEATS WARMUP=$WARMUP; path $URL_PATH; Host ${HOST_HEADER:-<url>})"
  local dir="$RUN_DIR/conf/tls" conf
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
  export TLS_CERT="$dir/cert.pem" TLS_KEY="$dir/key.pem"
  : > "$TLS_MD.data"
  if want nginx; then
    free_port
    conf=$(render_nginx nginx-pixel-tls.conf.in nginx 1 "$PORT")
    log "start nginx empty_gif over TLS, 1 worker, 127.0.0.1:$PORT"
    start_server nginx "$SERVER_CPU" nginx -c "$conf"
    wait_port "$SRV_PID" "$PORT"
    wait_https "$SRV_PID" "$PORT"
    measure_tls nginx "$PORT"
    stop_server nginx "$SRV_PID"
  fi
  if want dcsd; then
    local tls_port
    free_port
    tls_port=$PORT
    mkdir -p "$RUN_DIR/conf/dcsd"
    printf '[limits]\nmax_connections_per_ip = 0\n[tls]\ncert = "%s"\nkey = "%s"\ntls_listen = ["127.0.0.1:%s"]\n' \
      "$TLS_CERT" "$TLS_KEY" "$tls_port" > "$RUN_DIR/conf/dcsd/dcsd.toml"
    start_dcsd dcsd "$DCSD_BIN" --config "$RUN_DIR/conf/dcsd/dcsd.toml"
    local plain=$PORT
    wait_https "$SRV_PID" "$tls_port"
    measure_tls dcsd "$tls_port"
    curl -s "http://127.0.0.1:$plain/metrics" | grep '^dcsd_tls_handshake' > "$RUN_DIR/raw/dcsd.tls-metrics.txt" || true
    stop_dcsd dcsd
  fi
  {
    echo "| TLS | nginx | dcsd | dcsd/nginx |"
    echo "|---|---|---|---|"
    awk '
      { v[$1, $2] = $5 }
      END {
        split("new reuse idle", ks, " ")
        label["new"] = "new handshake (s_time -new): server µs/connection"
        label["reuse"] = "resumed handshake (s_time -reuse): server µs/connection"
        label["idle"] = "RSS per idle TLS connection, kB"
        for (i = 1; i <= 3; i++) {
          k = ks[i]; a = v["nginx", k]; b = v["dcsd", k]
          printf "| %s | %s | %s | %s |\n", label[k], (a == "" ? "–" : a), (b == "" ? "–" : b), (a > 0 && b != "" ? sprintf("%.2f", b / a) : "–")
        }
      }' "$TLS_MD.data"
    awk '$2 != "idle" { printf "| %s %s: connections/s (one at a time) | | | %s |\n", $1, $2, $4 }' "$TLS_MD.data"
    [[ -s "$RUN_DIR/raw/dcsd.tls-metrics.txt" ]] && { echo; echo "dcsd TLS counters after the run:"; sed 's/^/    /' "$RUN_DIR/raw/dcsd.tls-metrics.txt"; }
  } > "$TLS_MD"
}

# ------------------------------------------------------------------ anchor B: partner
export PARTNER_TIMEOUT_MS PARTNER_BUDGET_MS PARTNER_POOL PARTNER_BREAKER_FAILURES PARTNER_BREAKER_OPEN_MS

# start_partner LABEL DELAY_MS: the stand-in on LOADGEN_CPU, 1 thread, a free port (SIM_PORT);
# waits for its ready line and its port. Sets SIM_PID.
start_partner() {
  local label=$1 d=$2 delay
  if [[ "$d" == *.* ]]; then
    delay=(--delay-us "$(awk -v d="$d" 'BEGIN { printf "%d", d * 1000 }')")
  else
    delay=(--delay-ms "$d")
  fi
  free_port
  SIM_PORT=$PORT
  log "start partner stand-in ($PARTNER_BIN), delay $d ms, 1 thread, CPU $LOADGEN_CPU, 127.0.0.1:$SIM_PORT"
  local extra
  # The crate's stand-in keeps no request records while measured (--keep 0: no lock, no copy
  # per request); another stand-in gets only what PARTNER_EXTRA_ARGS says.
  read -r -a extra <<< "${PARTNER_EXTRA_ARGS-$([[ $PARTNER_ARGS_STYLE == listen ]] && echo --keep 0)}"
  start_server "$label" "$LOADGEN_CPU" "$PARTNER_BIN" "--$PARTNER_ARGS_STYLE" "127.0.0.1:$SIM_PORT" --threads 1 \
    "${delay[@]}" "${extra[@]}"
  SIM_PID=$SRV_PID
  wait_line "$SIM_PID" "$(server_log "$label")" 'listening on'
  wait_port "$SIM_PID" "$SIM_PORT"
  mem_snapshot "$label" "$SIM_PID" idle
}

# dcsd_config NAME PARTNERS URL_TEMPLATE BIN: writes conf/NAME/{dcsd.toml,taxonomy.json},
# checks them with `BIN --check`, prints the dcsd.toml path.
dcsd_config() {
  local dir="$RUN_DIR/conf/$1"
  python3 "$HARNESS_DIR/partner-config.py" "$dir" "$2" "$3"
  "$4" --config "$dir/dcsd.toml" --check >&2 || { echo "$4 --check refused $dir" >&2; exit 1; }
  echo "$dir/dcsd.toml"
}

# measure_partner NAME URL RATES...: oha at each fixed rate, PARTNER_CONNS connections, against
# the running server; SRV_PIDS and EXTRA_PIDS set by the caller.
measure_partner() {
  local name=$1 url=$2 q
  shift 2
  sample "$name-$META_CASE" "$url"
  META_ANCHOR=P META_SERVER=$name META_CONN=keepalive
  for q in "$@"; do
    RUN_CONNS=$PARTNER_CONNS series oha "P-$name-$META_CASE-oha$q" "$LOADGEN_CPU" "$q" "$url" "${HDR[@]}"
  done
}

# partner_dcsd NAME BIN CONFIG RATES...: one dcsd (or base) cell set against the running stand-in.
partner_dcsd() {
  local name=$1 bin=$2 config=$3 label="$1-$META_CASE"
  shift 3
  start_dcsd "$label" "$bin" --config "$config"
  mem_snapshot "$label" "$SRV_PID" idle
  SRV_PIDS=$SRV_PID EXTRA_PIDS=$SIM_PID
  measure_partner "$name" "http://127.0.0.1:$PORT$URL_PATH" "$@"
  stop_dcsd "$label"
}

partner_run() {
  log "load run (partner anchors): $RUN_DIR  (DURATION=$DURATION REPEATS=$REPEATS WARMUP=$WARMUP; rates $PARTNER_RATES; delays $PARTNER_DELAYS_MS ms; $PARTNER_CONNS connections; path $URL_PATH; Host ${HOST_HEADER:-<url>})"
  [[ $URL_PATH == *d_rtbd=json* ]] || log "note: not JSON mode ($URL_PATH): dcsd answers without waiting for partners"
  local d n name conf first=1 rates
  read -r -a rates <<< "$PARTNER_RATES"
  for d in $PARTNER_DELAYS_MS; do
    META_CASE="d$d"
    start_partner "sim-d$d" "$d"
    local template="http://127.0.0.1:$SIM_PORT/segments?uid=\${UUID}"
    if want direct; then
      log "direct: load generator -> stand-in"
      SRV_PIDS=$SIM_PID EXTRA_PIDS=""
      measure_partner direct "http://127.0.0.1:$SIM_PORT$URL_PATH" "${rates[@]}"
    fi
    if want nginx; then
      free_port
      conf=$(render_nginx nginx-proxy.conf.in "nginx-proxy-d$d" 1 "$PORT" "$SIM_PORT")
      log "start nginx proxy_pass (1 worker, upstream keepalive 256) -> stand-in, 127.0.0.1:$PORT"
      start_server "nginx-proxy-d$d" "$SERVER_CPU" nginx -c "$conf"
      wait_port "$SRV_PID" "$PORT"
      wait_http "$SRV_PID" "$PORT" /
      mem_snapshot "nginx-proxy-d$d" "$SRV_PID" idle
      SRV_PIDS=$(tree_pids "$SRV_PID") EXTRA_PIDS=$SIM_PID
      measure_partner nginx "http://127.0.0.1:$PORT$URL_PATH" "${rates[@]}"
      stop_server "nginx-proxy-d$d" "$SRV_PID"
    fi
    if want dcsd; then
      for n in $PARTNERS_PER_REQUEST; do
        name=dcsd; ((n == 1)) || name=dcsd-p$n
        conf=$(dcsd_config "$name-d$d" "$n" "$template" "$DCSD_BIN")
        partner_dcsd "$name" "$DCSD_BIN" "$conf" "${rates[@]}"
      done
    fi
    if [[ -n "${DCSD_BASELINE_BIN:-}" ]]; then
      conf=$(dcsd_config "base-d$d" 1 "$template" "$DCSD_BASELINE_BIN")
      partner_dcsd base "$DCSD_BASELINE_BIN" "$conf" "${rates[@]}"
    fi
    # The hung partner, once: every call is told to hang (sim_mode=hang), so dcsd's answer
    # waits for timeout_ms / budget_ms, or not at all while the circuit breaker is open.
    if ((first)) && want hang; then
      META_CASE=hang
      conf=$(dcsd_config "dcsd-hang" 1 "$template&sim_mode=hang" "$DCSD_BIN")
      partner_dcsd dcsd "$DCSD_BIN" "$conf" "$PARTNER_HANG_RATE"
      if [[ -n "${DCSD_BASELINE_BIN:-}" ]]; then
        conf=$(dcsd_config "base-hang" 1 "$template&sim_mode=hang" "$DCSD_BASELINE_BIN")
        partner_dcsd base "$DCSD_BASELINE_BIN" "$conf" "$PARTNER_HANG_RATE"
      fi
    fi
    first=0
    stop_server "sim-d$d" "$SIM_PID"
  done
}

# ------------------------------------------------------------------ run, report
case $MODE in pixel) pixel_run ;; eventlog) eventlog_run ;; tls) tls_run ;; *) partner_run ;; esac

python3 "$REPORT_PY" "$RUN_DIR" > /dev/null || { log "report.py failed"; exit 1; }
{
  echo "dcsd load benchmark ($MODE) $(date -u +%Y-%m-%dT%H:%M:%SZ): servers on CPU $SERVER_CPU, load generator on CPU $LOADGEN_CPU;"
  if [[ $MODE != partner ]]; then
    echo "GET $URL_PATH (Host: ${HOST_HEADER:-127.0.0.1:PORT}); ${DURATION} runs, median of $REPEATS; c$CONNS keep-alive unless 'close'."
    [[ $MODE == tls ]] && echo "Over HTTPS (TLS 1.3, self-signed ECDSA P-256): wrk rows below; handshakes and idle memory after them."
  else
    echo "GET $URL_PATH (Host: ${HOST_HEADER:-127.0.0.1:PORT}); oha c$PARTNER_CONNS at fixed rates; ${DURATION} runs, median of $REPEATS;"
    echo "partner stand-in on CPU $LOADGEN_CPU; dcsd: timeout_ms $PARTNER_TIMEOUT_MS, budget_ms $PARTNER_BUDGET_MS, pool $PARTNER_POOL, breaker $PARTNER_BREAKER_FAILURES/$PARTNER_BREAKER_OPEN_MS ms."
  fi
  echo "Ratios: < 1 is better for µs/req and latency, > 1 for req/s. Ranges: $RUN_DIR/summary.md"
  echo
  cat "$RUN_DIR/table.md"
  if [[ $MODE == tls ]]; then echo; cat "$TLS_MD"; fi
}
