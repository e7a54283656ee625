# shellcheck shell=bash disable=SC2034  # (variables set here are read by the sourcing script)
# Helpers of benches/load.sh; source this file, do not run it.
#
# What it provides:
#   settings      bench.env (environment overrides win), QUICK=1 for smoke runs
#   run directory RUN_DIR/{raw,conf,tmp}, runs.jsonl (one line per recorded load run),
#                 mem.jsonl (memory snapshots), env.txt, bench.log
#   servers       start_server / stop_server, by PID, under /usr/bin/time -v, pinned with
#                 taskset; free_port, wait_port, wait_url, wait_http, wait_line; render_nginx
#   load          run_wrk (closed loop), run_oha (fixed rate, latency-corrected), series
#                 (warm-up + REPEATS runs); each records the server's CPU time over the run
#                 from /proc/PID/task/*/schedstat
#
# Rules: servers bind 127.0.0.1 only, are started here and stopped by their PID (never by
# name); every load run is wrapped in `timeout`; an EXIT trap stops whatever is still running.

set -euo pipefail
shopt -s inherit_errexit   # a failing step inside $(...) fails the caller too

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCHES_DIR=$(cd "$HARNESS_DIR/.." && pwd)
REPO=$(cd "$BENCHES_DIR/.." && pwd)
# shellcheck source=bench.env
source "$HARNESS_DIR/bench.env"

export PATH="$HOME/.cargo/bin:$PATH"
BENCH_WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/dcsd-bench}
WRK_LUA="$HARNESS_DIR/wrk-report.lua"
REPORT_PY="$HARNESS_DIR/report.py"
OHA=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}

if [[ "${QUICK:-0}" == 1 ]]; then
  DURATION=3s WARMUP=1s REPEATS=1
fi
seconds() { echo "${1%s}"; }
if (($(seconds "$DURATION") > 15)); then
  echo "DURATION must be at most 15s (it is $DURATION)" >&2
  exit 2
fi
RUN_TIMEOUT=$(($(seconds "$DURATION") + 10))

RUN_DIR=${RUN_DIR:-$BENCH_WORK/load-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RUN_DIR/raw" "$RUN_DIR/conf" "$RUN_DIR/tmp"
RUNS_JSONL="$RUN_DIR/runs.jsonl"
MEM_JSONL="$RUN_DIR/mem.jsonl"
# Raw file names carry the invocation's time, so a second invocation into the same RUN_DIR
# never overwrites raw files that earlier records point to.
SERIES_ID=${SERIES_ID:-$(date -u +%H%M%S)}

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$RUN_DIR/bench.log" >&2; }

# ---------------------------------------------------------------- processes

# Every server started here: NAME -> PID of its /usr/bin/time wrapper.
declare -A WRAPPERS=()

_stop_all() {
  local name w p
  for name in "${!WRAPPERS[@]}"; do
    w=${WRAPPERS[$name]}
    for p in $(pgrep -P "$w" 2>/dev/null || true); do kill -TERM "$p" 2>/dev/null || true; done
  done
}
trap _stop_all EXIT

# taskset prefix for a CPU list; "all" = no pinning.
pin_prefix() { [[ "$1" == all ]] || echo "taskset -c $1"; }

# start_server NAME CPUS CMD... : run CMD under /usr/bin/time -v (peak RSS at exit), pinned to
# CPUS; output to raw/NAME.SERIES.log. Sets SRV_PID (the server: taskset execs it) and
# remembers the wrapper. Does not wait for readiness (see wait_port / wait_http / wait_line).
start_server() {
  local name=$1 cpus=$2
  shift 2
  local pin
  pin=$(pin_prefix "$cpus")
  echo "${pin:+$pin }$*" > "$RUN_DIR/conf/$name.cmd"
  # shellcheck disable=SC2086
  /usr/bin/time -v -o "$RUN_DIR/raw/$name.$SERIES_ID.time" $pin "$@" \
    > "$RUN_DIR/raw/$name.$SERIES_ID.log" 2>&1 &
  WRAPPERS[$name]=$!
  SRV_PID=""
  local i
  for ((i = 0; i < 250; i++)); do
    SRV_PID=$(pgrep -P "${WRAPPERS[$name]}" || true)
    [[ -n "$SRV_PID" ]] && break
    kill -0 "${WRAPPERS[$name]}" 2>/dev/null || break
    sleep 0.02
  done
  if [[ -z "$SRV_PID" ]]; then
    echo "server $name did not start:" >&2
    cat "$RUN_DIR/raw/$name.$SERIES_ID.log" >&2
    return 1
  fi
}

server_log() { echo "$RUN_DIR/raw/$1.$SERIES_ID.log"; }

# A server's PIDs: itself and its children (nginx's workers).
# shellcheck disable=SC2046  # one word per PID is the point
tree_pids() { echo "$1" $(pgrep -P "$1" || true); }

# Nanoseconds on CPU (user + system), summed over every thread of the given PIDs: field 1 of
# /proc/PID/task/TID/schedstat, finer than the clock-tick utime/stime of /proc/PID/stat.
cpu_ns() {
  local total=0 pid f ns
  for pid in "$@"; do
    for f in /proc/"$pid"/task/*/schedstat; do
      read -r ns _ < "$f" 2>/dev/null || continue
      total=$((total + ns))
    done
  done
  echo "$total"
}

# mem_snapshot NAME PID [WHEN]: VmHWM, VmRSS and Pss (kB) summed over PID and its children.
mem_snapshot() {
  local name=$1 pid=$2 when=${3:-before-stop} p n=0 hwm=0 rss=0 pss=0 v
  for p in $(tree_pids "$pid"); do
    [[ -r /proc/$p/status ]] || continue
    n=$((n + 1))
    v=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status" 2>/dev/null || true); hwm=$((hwm + ${v:-0}))
    v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || true); rss=$((rss + ${v:-0}))
    v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true); pss=$((pss + ${v:-0}))
  done
  printf '{"server":"%s","procs":%d,"sum_vmhwm_kb":%d,"sum_vmrss_kb":%d,"sum_pss_kb":%d,"when":"%s"}\n' \
    "$name" "$n" "$hwm" "$rss" "$pss" "$when" >> "$MEM_JSONL"
}

# stop_server NAME PID: memory snapshot, SIGTERM by PID, SIGKILL after 15 s, wait for it, then
# record /usr/bin/time's peak RSS (of the largest single process).
stop_server() {
  local name=$1 pid=$2 wrapper=${WRAPPERS[$1]} i maxrss
  mem_snapshot "$name" "$pid"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$wrapper" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "  $name did not stop within 15 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$wrapper" 2>/dev/null || true
  unset "WRAPPERS[$name]"
  maxrss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$RUN_DIR/raw/$name.$SERIES_ID.time" 2>/dev/null || true)
  printf '{"server":"%s","time_v_maxrss_kb":%d,"when":"exit"}\n' "$name" "${maxrss:-0}" >> "$MEM_JSONL"
}

# ---------------------------------------------------------------- ports and readiness

# free_port: sets PORT to a port nothing listens on, at or above LOAD_PORT_BASE. Ports are never
# reused within a run, so a dying io_uring server's lingering listener (the kernel tears the
# ring down asynchronously) can never take part of the next server's load through SO_REUSEPORT.
NEXT_PORT=$LOAD_PORT_BASE
free_port() {
  local p
  for ((p = NEXT_PORT; p < NEXT_PORT + 500; p++)); do
    if [[ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]]; then
      NEXT_PORT=$((p + 1)) PORT=$p
      return 0
    fi
  done
  echo "no free port from $NEXT_PORT" >&2
  return 1
}

# wait_port PID PORT: until PORT accepts a TCP connection (10 s; fails early if PID exits).
wait_port() {
  local pid=$1 port=$2 i
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || { echo "server exited during start-up" >&2; return 1; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "port $port did not open within 10 s" >&2
  return 1
}

# wait_url PID URL [CURL_ARG...]: until GET URL answers 200 (30 s; fails early if PID exits).
wait_url() {
  local pid=$1 url=$2 i code
  shift 2
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || { echo "server exited during start-up" >&2; return 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true)
    [[ "$code" == 200 ]] && return 0
    sleep 0.1
  done
  echo "no 200 from $url within 30 s" >&2
  return 1
}

# wait_http PID PORT PATH: until GET http://127.0.0.1:PORT/PATH answers 200 (see wait_url).
wait_http() {
  wait_url "$1" "http://127.0.0.1:$2$3"
}

# wait_line PID FILE REGEX: until FILE has a line matching REGEX (a server's ready line;
# 10 s; fails early if PID exits).
wait_line() {
  local pid=$1 file=$2 re=$3 i
  for ((i = 0; i < 200; i++)); do
    grep -qE "$re" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "server exited during start-up" >&2; return 1; }
    sleep 0.05
  done
  echo "no line matching '$re' in $file within 10 s" >&2
  return 1
}

# ---------------------------------------------------------------- nginx

# render_nginx TEMPLATE NAME WORKERS PORT [UPSTREAM_PORT]: fill in a template of
# benches/anchors/ (TLS_CERT and TLS_KEY from the environment for the TLS anchor), check it
# with `nginx -t`, print the rendered file's path.
render_nginx() {
  local template=$1 name=$2 workers=$3 port=$4 upstream=${5:-0}
  local out="$RUN_DIR/conf/$name.conf"
  mkdir -p "$RUN_DIR/tmp/body" "$RUN_DIR/tmp/proxy"
  sed -e "s|@WORKERS@|$workers|g" -e "s|@RUN@|$RUN_DIR|g" -e "s|@NAME@|$name|g" \
    -e "s|@PORT@|$port|g" -e "s|@UPSTREAM_PORT@|$upstream|g" \
    -e "s|@TLS_CERT@|${TLS_CERT:-}|g" -e "s|@TLS_KEY@|${TLS_KEY:-}|g" \
    "$BENCHES_DIR/anchors/$template" > "$out"
  nginx -t -q -c "$out" >&2
  echo "$out"
}

# ---------------------------------------------------------------- load runs
#
# Each recorded run appends one JSON line to runs.jsonl, labelled with:
#   META_ANCHOR (L pixel, P partner)  META_SERVER  META_CASE (e.g. d5, hang; "" for none)
#   META_CONN (keepalive, close)      placement "pinned"
# and the CPU time over the run of the server (SRV_PIDS) and, separately, of EXTRA_PIDS (the
# partner stand-in).
SRV_PIDS=""
EXTRA_PIDS=""
META_CASE=""

quote_args() { (($#)) || return 0; printf ' %q' "$@"; }
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"; }
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", (b - a) / 1e9 }'; }
lg_json() { awk '/^LGTIME/ { printf "{\"lg_wall_s\":%s,\"lg_user_s\":%s,\"lg_sys_s\":%s,\"lg_maxrss_kb\":%s}", $2, $3, $4, $5 }' "$1" 2>/dev/null || true; }

_record() { # tool rate conns rep srv_s extra_s payload_json lg_json cmd raw
  printf '{"anchor":"%s","server":"%s","case":"%s","placement":"pinned","conn":"%s","tool":"%s","rate":%d,"conns":%d,"rep":%d,"srv_cpu_s":%s,"extra_cpu_s":%s,%s,"lg":%s,"cmd":%s,"raw":"%s"}\n' \
    "$META_ANCHOR" "$META_SERVER" "$META_CASE" "$META_CONN" "$1" "$2" "$3" "$4" "$5" "$6" "$7" \
    "${8:-null}" "$(json_str "${9}")" "${10}" >> "$RUNS_JSONL"
}

# run_wrk TAG CPUS REP URL [wrk args...]: closed loop, CONNS connections, one thread.
# REP 0 is the warm-up (WARMUP long, not recorded).
run_wrk() {
  local tag=$1 cpus=$2 rep=$3 url=$4
  shift 4
  local pin d=$DURATION conns=${RUN_CONNS:-$CONNS}
  pin=$(pin_prefix "$cpus")
  ((rep == 0)) && d=$WARMUP
  local out="$RUN_DIR/raw/$tag.$SERIES_ID.r$rep.wrk.txt"
  local c0 x0 c1 x1
  # shellcheck disable=SC2086
  c0=$(cpu_ns $SRV_PIDS) x0=$(cpu_ns $EXTRA_PIDS)
  # shellcheck disable=SC2086
  /usr/bin/time -f 'LGTIME %e %U %S %M' -o "$out.lgtime" timeout "$RUN_TIMEOUT" $pin \
    wrk -t1 -c"$conns" -d"$d" --latency -s "$WRK_LUA" "$@" "$url" > "$out" 2>&1 || true
  # shellcheck disable=SC2086
  c1=$(cpu_ns $SRV_PIDS) x1=$(cpu_ns $EXTRA_PIDS)
  ((rep == 0)) && return 0
  local result
  result=$(sed -n 's/^WRKJSON //p' "$out")
  [[ -n "$result" ]] || result='{"requests":0,"rps":0,"errors":-1}'
  local cmd
  cmd="${pin:+$pin }wrk -t1 -c$conns -d$d --latency -s benches/harness/wrk-report.lua$(quote_args "$@") '$url'"
  _record wrk 0 "$conns" "$rep" "$(secs_between "$c0" "$c1")" "$(secs_between "$x0" "$x1")" \
    "\"wrk\":$result" "$(lg_json "$out.lgtime")" "$cmd" "raw/$(basename "$out")"
}

# run_oha TAG CPUS REP RATE URL [oha args...]: open loop at RATE req/s over CONNS connections,
# latency counted from when each request was due (--latency-correction), one worker thread.
run_oha() {
  local tag=$1 cpus=$2 rep=$3 rate=$4 url=$5
  shift 5
  local pin d=$DURATION conns=${RUN_CONNS:-$CONNS}
  pin=$(pin_prefix "$cpus")
  ((rep == 0)) && d=$WARMUP
  local out="$RUN_DIR/raw/$tag.$SERIES_ID.r$rep.oha.json"
  local c0 x0 c1 x1
  # shellcheck disable=SC2086
  c0=$(cpu_ns $SRV_PIDS) x0=$(cpu_ns $EXTRA_PIDS)
  # shellcheck disable=SC2086
  /usr/bin/time -f 'LGTIME %e %U %S %M' -o "$out.lgtime" timeout "$RUN_TIMEOUT" $pin \
    "$OHA" -z "$d" -c "$conns" -q "$rate" --latency-correction --no-tui --output-format json \
    --worker-threads 1 "$@" "$url" > "$out" 2> "$out.stderr" || true
  # shellcheck disable=SC2086
  c1=$(cpu_ns $SRV_PIDS) x1=$(cpu_ns $EXTRA_PIDS)
  ((rep == 0)) && return 0
  local cmd
  cmd="${pin:+$pin }oha -z $d -c $conns -q $rate --latency-correction --no-tui --output-format json --worker-threads 1$(quote_args "$@") '$url'"
  _record oha "$rate" "$conns" "$rep" "$(secs_between "$c0" "$c1")" "$(secs_between "$x0" "$x1")" \
    "\"oha_file\":\"raw/$(basename "$out")\"" "$(lg_json "$out.lgtime")" "$cmd" "raw/$(basename "$out")"
}

# series wrk TAG CPUS URL [args...] | series oha TAG CPUS RATE URL [args...]:
# one warm-up, then REPEATS recorded runs.
series() {
  local tool=$1 tag=$2 cpus=$3 r
  shift 3
  if [[ $tool == wrk ]]; then
    log "  wrk  $tag x$REPEATS"
    for ((r = 0; r <= REPEATS; r++)); do run_wrk "$tag" "$cpus" "$r" "$@"; done
  else
    log "  oha  $tag ($1 req/s) x$REPEATS"
    for ((r = 0; r <= REPEATS; r++)); do run_oha "$tag" "$cpus" "$r" "$@"; done
  fi
}

# ---------------------------------------------------------------- environment

tools_missing() {
  local m=()
  command -v wrk >/dev/null || m+=(wrk)
  command -v nginx >/dev/null || m+=(nginx)
  [[ -x "$OHA" ]] || m+=(oha)
  [[ -x /usr/bin/time ]] || m+=(/usr/bin/time)
  command -v curl >/dev/null || m+=(curl)
  command -v ss >/dev/null || m+=(ss)
  command -v pgrep >/dev/null || m+=(pgrep)
  command -v taskset >/dev/null || m+=(taskset)
  command -v python3 >/dev/null || m+=(python3)
  echo "${m[*]}"
}

# env.txt: the machine, the tools and the settings, once per run directory.
describe_env() {
  [[ -s "$RUN_DIR/env.txt" ]] && return 0
  {
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "uname: $(uname -srvm)"
    echo "cpus: $(nproc) ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo))"
    echo "mem: $(awk '/MemTotal/{print $2" kB"}' /proc/meminfo)"
    echo "nginx: $(nginx -v 2>&1)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "oha: $("$OHA" --version 2>&1)"
    echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
    echo "git: $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')"
    echo "monoio: $(grep -A1 '^name = "monoio"$' "$REPO/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')"
    echo "settings: DURATION=$DURATION WARMUP=$WARMUP REPEATS=$REPEATS CONNS=$CONNS PIXEL_RATES='$PIXEL_RATES' CLOSE_RATE=$CLOSE_RATE PARTNER_CONNS=$PARTNER_CONNS PARTNER_RATES='$PARTNER_RATES' PARTNER_DELAYS_MS='$PARTNER_DELAYS_MS' PARTNERS_PER_REQUEST='$PARTNERS_PER_REQUEST' PARTNER_HANG_RATE=$PARTNER_HANG_RATE SERVER_CPU=$SERVER_CPU LOADGEN_CPU=$LOADGEN_CPU MIMALLOC_ALLOW_THP=${MIMALLOC_ALLOW_THP:-}"
    echo "sysctl: somaxconn=$(cat /proc/sys/net/core/somaxconn) tw_reuse=$(cat /proc/sys/net/ipv4/tcp_tw_reuse) port_range='$(cat /proc/sys/net/ipv4/ip_local_port_range)' thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo '?')"
    echo "nofile: $(ulimit -n)"
  } > "$RUN_DIR/env.txt"
}
