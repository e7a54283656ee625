#!/usr/bin/env bash
# Daemon-level load benchmark: dcsd's `/event` against the pixel anchors
# (nginx empty_gif, 1 worker; minpixel, 1 thread, COOP_TASKRUN), in ONE run,
# with the load shapes of the shared bench harness, printed as ONE table.
#
# usage: benches/load.sh [--quick] [--pixel]      (from the repository root)
#   --quick   3 s runs, 1 repeat (smoke test, about 1.5 min); default 10 s x 3
#   --pixel   pixel-mode path (no d_rtbd=json) instead of JSON mode
# environment:
#   DCSD_BIN=path      use this binary (no build); default: cargo build --release
#   EXTRA_HEADER="Name: value"  one more header on every request (e.g. a demdex cookie)
#   DCSD_ARGS="..."    extra dcsd arguments (e.g. --taxonomy big.json), for dcsd and base
#   DCSD_BASELINE_BIN=path  also measure this (older) dcsd binary in the same run, as
#                      server "base", and add the columns base and dcsd/base
#   URL_PATH=/...      request path (default /event?d_sid=1234&c_key=val&d_rtbd=json)
#   HOST_HEADER=name   Host header sent to every server (default localhost, a host
#                      of the built-in demo taxonomy; empty = 127.0.0.1:PORT)
#   DURATION, REPEATS, WARMUP, PIXEL_RATES, CLOSE_RATE, CONNS: as in the harness
#   LOAD_ONLY="nginx minpixel dcsd"  subset of servers
#   DCSD_BENCH_DIR (default ../shared/bench), BENCH_WORK (default /tmp/dcsd-bench)
#   MIMALLOC_ALLOW_THP (default 0, as in the systemd unit; 1 measures with huge pages)
#
# Every server binds 127.0.0.1 on a free port and runs on CPU 0 (taskset -c 0);
# the load generator runs on CPU 1. Servers are started by this script and
# stopped by PID. Each load run is bounded by `timeout`. Raw outputs, configs,
# runs.jsonl, summary.md (medians with min-max) and the table go to
# $BENCH_WORK/load-<UTC>/. Server CPU us/req = delta of
# /proc/PID/task/*/schedstat (field 1, ns on CPU) over the run / completed requests.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=$(cd "${DCSD_BENCH_DIR:-$REPO/../shared/bench}" && pwd)
export BENCH_WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/dcsd-bench}
export PATH="$HOME/.cargo/bin:$PATH"
# As the systemd unit: no transparent huge pages for mimalloc (README "Performance").
export MIMALLOC_ALLOW_THP=${MIMALLOC_ALLOW_THP:-0}

PIXEL_MODE_PATH='/event?d_sid=1234&c_key=val'
URL_PATH=${URL_PATH:-/event?d_sid=1234&c_key=val&d_rtbd=json}
for a in "$@"; do
  case "$a" in
    --quick) export QUICK=1 ;;
    --pixel) URL_PATH=$PIXEL_MODE_PATH ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a (see --help)" >&2; exit 2 ;;
  esac
done
HOST_HEADER=${HOST_HEADER-localhost}
LOAD_ONLY=${LOAD_ONLY:-"nginx minpixel dcsd"}
want() { [[ " $LOAD_ONLY " == *" $1 "* ]]; }

# ------------------------------------------------------------------ binaries
if want dcsd; then
  if [[ -n "${DCSD_BIN:-}" ]]; then
    [[ -x "$DCSD_BIN" ]] || { echo "DCSD_BIN=$DCSD_BIN is not an executable file" >&2; exit 2; }
  else
    echo "building dcsd (cargo build --release)" >&2
    (cd "$REPO" && cargo build --release >&2)
    DCSD_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/dcsd
  fi
  DCSD_BIN=$(cd "$(dirname "$DCSD_BIN")" && pwd)/$(basename "$DCSD_BIN")
fi
MINPIXEL=$BENCH_WORK/tools-target/release/minpixel
tools_ok() {
  command -v wrk >/dev/null && command -v nginx >/dev/null && [[ -x /usr/bin/time ]] &&
    { command -v oha >/dev/null || [[ -x "$HOME/.cargo/bin/oha" ]]; } && [[ -x "$MINPIXEL" ]]
}
if ! tools_ok; then
  echo "bench tools missing: running $BENCH_DIR/scripts/00-install.sh" >&2
  bash "$BENCH_DIR/scripts/00-install.sh" >&2
  tools_ok || { echo "bench tools still missing after 00-install.sh" >&2; exit 1; }
fi
command -v curl >/dev/null || { echo "curl missing (apt-get install curl)" >&2; exit 1; }

# ------------------------------------------------------------------ harness
# lib.sh: bench.env defaults (env overrides win), QUICK handling, RUN_DIR
# layout (raw/ conf/ tmp/), start_server/stop_server by PID, series/run_wrk/
# run_oha (runs.jsonl with schedstat CPU deltas), and an EXIT trap that
# SIGTERMs the servers it started.
export RUN_DIR=${RUN_DIR:-$BENCH_WORK/load-$(date -u +%Y%m%dT%H%M%SZ)}
# shellcheck source=/dev/null
source "$BENCH_DIR/scripts/lib.sh"
# lib.sh traps INT/TERM with its cleanup but then carries on; here they end
# the run (the EXIT trap, lib.sh's _cleanup, still stops the servers by PID).
trap 'exit 130' INT
trap 'exit 143' TERM
describe_env
URL_PATH_Q=$URL_PATH
HDR=(); [[ -n "$HOST_HEADER" ]] && HDR=(-H "Host: $HOST_HEADER")
[[ -n "${EXTRA_HEADER:-}" ]] && HDR+=(-H "$EXTRA_HEADER")
read -r -a RATES <<< "$PIXEL_RATES"

# A port nothing listens on (scan upwards; distinct per server, so a dying
# io_uring server's lingering listener can never take part of the next load).
# free_port sets PORT (not run in a subshell, so NEXT_PORT advances).
NEXT_PORT=${LOAD_PORT_BASE:-18180}
free_port() {
  local p
  for ((p = NEXT_PORT; p < NEXT_PORT + 500; p++)); do
    if [[ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]]; then NEXT_PORT=$((p + 1)); PORT=$p; return 0; fi
  done
  echo "no free port from $NEXT_PORT" >&2; return 1
}

# wait_http PORT PATH: poll until it answers 200 (server must stay alive).
wait_http() {
  local port=$1 path=$2 i code
  for ((i = 0; i < 300; i++)); do
    kill -0 "$SRV_PID" 2>/dev/null || { echo "server exited during startup" >&2; return 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port$path" || true)
    [[ "$code" == 200 ]] && return 0
    sleep 0.1
  done
  echo "no 200 from http://127.0.0.1:$port$path within 30 s" >&2; return 1
}

# measure NAME PORT: the anchor load shapes against the running server SRV_PID.
measure() {
  local name=$1 port=$2 url="http://127.0.0.1:$2$URL_PATH_Q" q
  # One request first, kept for the record (status, headers, body size).
  curl -s -D "$RUN_DIR/raw/$name.sample.headers" -o "$RUN_DIR/raw/$name.sample.body" \
    "${HDR[@]}" "$url" || true
  log "  sample: $(head -1 "$RUN_DIR/raw/$name.sample.headers" | tr -d '\r'), $(wc -c < "$RUN_DIR/raw/$name.sample.body") body bytes"
  grep -qE '^HTTP/1\.[01] 200' "$RUN_DIR/raw/$name.sample.headers" || log "  WARNING: $name did not answer 200"
  grep -i '^x-error' "$RUN_DIR/raw/$name.sample.headers" | tr -d '\r' | sed 's/^/  WARNING: /' >&2 || true
  mem_snapshot "$name" "$SRV_PID" idle
  META_ANCHOR=L META_SERVER=$name META_PLACEMENT=pinned
  META_CONN=keepalive
  series wrk "L-$name-ka-wrk" "$LOADGEN_CPU" "$url" "${HDR[@]}"
  for q in "${RATES[@]}"; do series oha "L-$name-ka-oha$q" "$LOADGEN_CPU" "$q" "$url" "${HDR[@]}"; done
  META_CONN=close
  series wrk "L-$name-close-wrk" "$LOADGEN_CPU" "$url" "${HDR[@]}" -H "Connection: close"
  series oha "L-$name-close-oha$CLOSE_RATE" "$LOADGEN_CPU" "$CLOSE_RATE" "$url" "${HDR[@]}" --disable-keepalive
  kill -0 "$SRV_PID" 2>/dev/null || log "  WARNING: $name exited during the load runs"
}

# finish NAME: stop the server by PID (SIGTERM, 15 s, then SIGKILL).
finish() {
  local name=$1
  local pid=$SRV_PID guard
  ( trap 'kill "$s" 2>/dev/null; exit 0' TERM; sleep 15 & s=$!; wait "$s"; kill -KILL "$pid" 2>/dev/null ) &
  guard=$!
  stop_server "$name"
  kill "$guard" 2>/dev/null || true; wait "$guard" 2>/dev/null || true
}

log "load run: $RUN_DIR  (DURATION=$DURATION REPEATS=$REPEATS WARMUP=$WARMUP; path $URL_PATH_Q; Host ${HOST_HEADER:-<url>})"

if want nginx; then
  free_port; port=$PORT
  conf=$(render_nginx nginx-pixel.conf.in nginx "1" "$port")
  log "start nginx empty_gif, 1 worker, 127.0.0.1:$port"
  start_server nginx "$SERVER_CPU" nginx -c "$conf"
  wait_port "$port"; wait_http "$port" /
  measure nginx "$port"; finish nginx
fi
if want minpixel; then
  free_port; port=$PORT
  log "start minpixel, 1 thread, coop, 127.0.0.1:$port"
  start_server minpixel "$SERVER_CPU" "$MINPIXEL" --addr "127.0.0.1:$port" --threads 1 --uring-flags coop
  wait_port "$port"; wait_http "$port" /
  measure minpixel "$port"; finish minpixel
fi
if want dcsd; then
  free_port; port=$PORT
  log "start dcsd ($DCSD_BIN), 1 thread, 127.0.0.1:$port"
  read -r -a EXTRA_ARGS <<< "${DCSD_ARGS:-}"
  start_server dcsd "$SERVER_CPU" "$DCSD_BIN" --listen "127.0.0.1:$port" --threads 1 "${EXTRA_ARGS[@]}"
  wait_http "$port" /healthz || { cat "$RUN_DIR/raw/dcsd.$SERIES_ID.log" >&2; exit 1; }
  "$DCSD_BIN" --version > "$RUN_DIR/conf/dcsd.version" 2>&1 || true
  measure dcsd "$port"; finish dcsd
  if grep -qiE 'panicked|ERROR' "$RUN_DIR/raw/dcsd.$SERIES_ID.log"; then
    log "WARNING: dcsd logged errors: see $RUN_DIR/raw/dcsd.$SERIES_ID.log"
  fi
fi
if [[ -n "${DCSD_BASELINE_BIN:-}" ]]; then
  [[ -x "$DCSD_BASELINE_BIN" ]] || { echo "DCSD_BASELINE_BIN=$DCSD_BASELINE_BIN is not an executable file" >&2; exit 2; }
  free_port; port=$PORT
  log "start baseline dcsd ($DCSD_BASELINE_BIN), 1 thread, 127.0.0.1:$port"
  read -r -a EXTRA_ARGS <<< "${DCSD_ARGS:-}"
  start_server base "$SERVER_CPU" "$DCSD_BASELINE_BIN" --listen "127.0.0.1:$port" --threads 1 "${EXTRA_ARGS[@]}"
  wait_http "$port" /healthz || exit 1
  measure base "$port"; finish base
fi

python3 "$BENCH_DIR/scripts/report.py" "$RUN_DIR" > /dev/null || log "report.py failed"

# ------------------------------------------------------------------ table
python3 - "$RUN_DIR" "$BENCH_DIR/scripts/report.py" "$CLOSE_RATE" "$PIXEL_RATES" "$CONNS" > "$RUN_DIR/table.md" <<'PY'
import importlib.util, json, os, statistics, sys
run_dir, report_py, close_rate, rates = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(x) for x in sys.argv[4].split()]
conns = sys.argv[5]
spec = importlib.util.spec_from_file_location("report", report_py)
rep = importlib.util.module_from_spec(spec); spec.loader.exec_module(rep)
runs = [json.loads(l) for l in open(os.path.join(run_dir, "runs.jsonl")) if l.strip()]
cells = {}
for r in runs:
    cells.setdefault((r["server"], r["conn"], r["tool"], r["rate"]), []).append(rep.load_run(run_dir, r))
servers = ["nginx", "minpixel", "dcsd"]
has_base = any(k[0] == "base" for k in cells)
if has_base:
    servers.append("base")

def val(server, cell, key):
    ms = cells.get((server,) + cell)
    if not ms:
        return None
    if key == "errors":
        return float(sum(m["errors"] for m in ms))
    return statistics.median(m[key] for m in ms)

def fmt(v, key):
    if v is None:
        return "–"
    if key == "rps" or key == "errors":
        return f"{v:,.0f}"
    if key in ("p50", "p99"):
        return f"{v:.3f}"
    if key == "p999":
        return f"{v:.2f}"
    return f"{v:.2f}"

ka_wrk, cl_wrk = ("keepalive", "wrk", 0), ("close", "wrk", 0)
rows = [(f"server µs/req at max (wrk c{conns})", ka_wrk, "srv_us_per_req"),
        (f"max req/s (wrk c{conns})", ka_wrk, "rps")]
for q in rates:
    c = ("keepalive", "oha", q)
    k = f"{q // 1000}k" if q % 1000 == 0 else str(q)
    rows += [(f"server µs/req at {k} (oha)", c, "srv_us_per_req"),
             (f"achieved req/s at {k}", c, "rps"),
             (f"p50 ms at {k}", c, "p50"), (f"p99 ms at {k}", c, "p99"), (f"p99.9 ms at {k}", c, "p999")]
cc = ("close", "oha", close_rate)
k = f"{close_rate // 1000}k"
rows += [(f"close: max conn/s (wrk c{conns})", cl_wrk, "rps"),
         ("close: server µs/req at max", cl_wrk, "srv_us_per_req"),
         (f"close {k}/s (oha): p50 ms", cc, "p50"), (f"close {k}/s (oha): p99 ms", cc, "p99"),
         (f"close {k}/s (oha): p99.9 ms", cc, "p999")]
base_cols = (" base |", " dcsd/base |") if has_base else ("", "")
print(f"| metric | nginx | minpixel | dcsd |{base_cols[0]} dcsd/nginx | dcsd/minpixel |{base_cols[1]}")
print("|---|---|---|---|---|---|" + ("---|---|" if has_base else ""))
for label, cell, key in rows:
    v = [val(s, cell, key) for s in servers]
    ratio = lambda a, b: "–" if a is None or not b else f"{a / b:.2f}"
    extra = f" {ratio(v[2], v[3])} |" if has_base else ""
    print(f"| {label} | {' | '.join(fmt(x, key) for x in v)} | {ratio(v[2], v[0])} | {ratio(v[2], v[1])} |{extra}")
errs = []
for s in servers:
    e = sum(m["errors"] for (srv, *_), ms in cells.items() if srv == s for m in ms)
    errs.append("–" if not any(k[0] == s for k in cells) else str(e))
print(f"| errors (all measured runs) | {' | '.join(errs)} | | |" + (" |" if has_base else ""))
PY

{
  echo "dcsd load benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ): server on CPU $SERVER_CPU, load generator on CPU $LOADGEN_CPU;"
  echo "GET $URL_PATH_Q (Host: ${HOST_HEADER:-127.0.0.1:PORT}); ${DURATION} runs, median of $REPEATS; c$CONNS keep-alive unless 'close'."
  echo "Ratios: < 1 is better for µs/req and latency, > 1 for req/s. Ranges: $RUN_DIR/summary.md"
  echo
  cat "$RUN_DIR/table.md"
}
