#!/usr/bin/env python3
"""Tables of a benches/load.sh run directory.

usage: benches/harness/report.py RUN_DIR

Reads RUN_DIR/runs.jsonl (one line per recorded load run, written by harness/lib.sh) and
RUN_DIR/mem.jsonl, and writes
  summary.md  every cell: median (min–max) over its repeats, memory, the exact commands;
  table.md    the one comparison table of the run, with ratios (pixel or partner layout,
              whichever the run measured), which it also prints.

A cell is one (server, case, connection mode, tool, rate) combination; its value in table.md
is the median over the cell's repeats.
"""
import json
import os
import statistics
import sys
from collections import OrderedDict

# ---------------------------------------------------------------- reading runs


def read_oha(path):
    """The numbers of one oha JSON output. Requests still in flight when the run's time was up
    are not errors (oha reports them as 'aborted due to deadline')."""
    with open(path) as f:
        d = json.load(f)
    s = d["summary"]
    pct = d.get("latencyPercentiles") or {}
    codes = d.get("statusCodeDistribution") or {}
    errs = d.get("errorDistribution") or {}
    at_deadline = sum(v for k, v in errs.items() if "deadline" in k)
    other = {k: v for k, v in errs.items() if "deadline" not in k}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    not_2xx = sum(v for k, v in codes.items() if not k.startswith("2"))
    ms = lambda k: (pct.get(k) or 0) * 1e3  # noqa: E731
    return {
        "rps": s.get("requestsPerSec") or 0,
        "requests": ok + not_2xx,
        "p50": ms("p50"), "p90": ms("p90"), "p99": ms("p99"), "p999": ms("p99.9"), "p9999": ms("p99.99"),
        "max": (s.get("slowest") or 0) * 1e3,
        "errors": sum(other.values()) + not_2xx,
        "at_deadline": at_deadline,
        "error_kinds": dict(other, **({"non-2xx": not_2xx} if not_2xx else {})),
    }


def read_run(run_dir, r):
    """One runs.jsonl record -> its measurements, plus CPU per request."""
    if r["tool"] == "wrk":
        w = r.get("wrk") or {}
        m = {
            "rps": w.get("rps", 0), "requests": w.get("requests", 0),
            "p50": w.get("p50_ms", 0), "p90": w.get("p90_ms", 0), "p99": w.get("p99_ms", 0),
            "p999": w.get("p999_ms", 0), "p9999": w.get("p9999_ms", 0), "max": w.get("max_ms", 0),
            "errors": w.get("errors", 0), "at_deadline": 0, "error_kinds": {},
        }
    else:
        try:
            m = read_oha(os.path.join(run_dir, r["oha_file"]))
        except Exception as e:  # noqa: BLE001  (an empty or cut file: report it, go on)
            m = {"rps": 0, "requests": 0, "p50": 0, "p90": 0, "p99": 0, "p999": 0, "p9999": 0,
                 "max": 0, "errors": 1, "at_deadline": 0, "error_kinds": {"unreadable oha output": str(e)}}
    done = m["requests"] or 1
    m["srv_us_per_req"] = r["srv_cpu_s"] * 1e6 / done
    m["extra_us_per_req"] = r.get("extra_cpu_s", 0) * 1e6 / done
    lg = r.get("lg") or {}
    wall = lg.get("lg_wall_s") or 0
    m["lg_cpu_pct"] = 100.0 * (lg.get("lg_user_s", 0) + lg.get("lg_sys_s", 0)) / wall if wall else 0
    return m


def read_cells(run_dir):
    """OrderedDict (server, case, conn, tool, rate) -> {"runs": [...], "cmd": str, "conns": int}."""
    cells = OrderedDict()
    path = os.path.join(run_dir, "runs.jsonl")
    if not os.path.exists(path):
        return cells, None
    anchor = None
    for line in open(path):
        if not line.strip():
            continue
        r = json.loads(line)
        anchor = anchor or r["anchor"]
        key = (r["server"], r.get("case", ""), r["conn"], r["tool"], r["rate"])
        c = cells.setdefault(key, {"runs": [], "cmd": r["cmd"], "conns": r["conns"]})
        c["runs"].append(read_run(run_dir, r))
    return cells, anchor


def median(cells, key, what):
    c = cells.get(key)
    if not c:
        return None
    if what == "errors":
        return float(sum(m["errors"] for m in c["runs"]))
    return statistics.median(m[what] for m in c["runs"])


# ---------------------------------------------------------------- formatting


def num(v, digits=2):
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def spread(runs, what, digits=2):
    xs = [m[what] for m in runs]
    if len(xs) == 1:
        return num(xs[0], digits)
    return f"{num(statistics.median(xs), digits)} ({num(min(xs), digits)}–{num(max(xs), digits)})"


def table_value(v, what):
    if v is None:
        return "–"
    if what in ("rps", "errors"):
        return f"{v:,.0f}"
    if what in ("p50", "p99"):
        return f"{v:.3f}"
    return f"{v:.2f}"


def ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.2f}"


def rate_label(q):
    return f"{q // 1000}k" if q >= 1000 and q % 1000 == 0 else str(q)


def case_label(case):
    if case == "hang":
        return "hung partner"
    if case.startswith("d"):
        return f"{case[1:]} ms partner"
    return case


# ---------------------------------------------------------------- summary.md


def summary(run_dir, cells):
    out = []
    env = os.path.join(run_dir, "env.txt")
    if os.path.exists(env):
        out.append("```\n" + open(env).read().strip() + "\n```\n")
    out.append("Each cell: median (min–max) over its repeats; latency in ms. `srv µs/req`: the server's "
               "CPU time (user + system, every thread and worker) per completed request; `+ partner`: the "
               "partner stand-in's CPU per request; `lg cpu%`: the load generator's CPU (100 = one core).\n")
    out.append("| server | case | conn | tool | target req/s | achieved req/s | p50 | p90 | p99 | p99.9 | max "
               "| srv µs/req | lg cpu% | errors |")
    out.append("|" + "---|" * 14)
    for (server, case, conn, tool, rate), c in cells.items():
        runs = c["runs"]
        errors = sum(m["errors"] for m in runs)
        kinds = {}
        for m in runs:
            for k, v in m["error_kinds"].items():
                kinds[k] = kinds.get(k, 0) + v if isinstance(v, (int, float)) else v
        etxt = str(errors) + (f" ({', '.join(f'{k}: {v}' for k, v in kinds.items())})" if kinds else "")
        late = sum(m["at_deadline"] for m in runs)
        if late:
            etxt += f"; {late} in flight at the end"
        srv = spread(runs, "srv_us_per_req")
        if any(m["extra_us_per_req"] for m in runs):
            srv += f" + partner {spread(runs, 'extra_us_per_req')}"
        out.append(
            f"| {server} | {case or '–'} | {conn} | {tool} c{c['conns']} | {'max' if tool == 'wrk' else f'{rate:,}'} "
            f"| {spread(runs, 'rps')} | {spread(runs, 'p50', 3)} | {spread(runs, 'p90', 3)} | {spread(runs, 'p99', 3)} "
            f"| {spread(runs, 'p999', 3)} | {spread(runs, 'max')} | {srv} | {spread(runs, 'lg_cpu_pct', 0)} | {etxt} |")
    mem_path = os.path.join(run_dir, "mem.jsonl")
    if os.path.exists(mem_path):
        out.append("\n### Memory (kB)\n")
        out.append("| server | idle: VmRSS summed (processes) | after load: VmHWM summed | after load: Pss summed "
                   "| /usr/bin/time -v max RSS (largest process) |")
        out.append("|---|---|---|---|---|")
        mem = OrderedDict()
        for line in open(mem_path):
            if line.strip():
                m = json.loads(line)
                mem.setdefault(m["server"], {})[m["when"]] = m
        for name, d in mem.items():
            idle, stop, ex = d.get("idle", {}), d.get("before-stop", {}), d.get("exit", {})
            out.append(f"| {name} | {idle.get('sum_vmrss_kb', '')} ({idle.get('procs', '')}) | "
                       f"{stop.get('sum_vmhwm_kb', '')} | {stop.get('sum_pss_kb', '')} | {ex.get('time_v_maxrss_kb', '')} |")
    out.append("\n### Commands (load: first repeat of each cell)\n")
    out.append("```")
    conf = os.path.join(run_dir, "conf")
    if os.path.isdir(conf):
        out.append("# servers (each under /usr/bin/time -v; configurations in conf/)")
        for fn in sorted(os.listdir(conf)):
            if fn.endswith(".cmd"):
                out.append(f"{fn[:-4]}: {open(os.path.join(conf, fn)).read().strip()}")
    out.append("# load")
    for (server, case, conn, _tool, _rate), c in cells.items():
        out.append(f"# {' '.join(x for x in (server, case, conn) if x)}\n{c['cmd']}")
    out.append("```")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- table.md, pixel mode


def pixel_table(cells):
    servers = ["nginx", "minpixel", "dcsd"]
    has_base = any(k[0] == "base" for k in cells)
    if has_base:
        servers.append("base")
    # Other dcsd variants measured in the same run (--eventlog: "log-interval", "log-always"),
    # each with its ratio to plain dcsd.
    variants = sorted({k[0] for k in cells} - set(servers))
    servers += variants
    wrk_conns = next((c["conns"] for k, c in cells.items() if k[3] == "wrk"), 64)
    rates = sorted({k[4] for k in cells if k[2] == "keepalive" and k[3] == "oha"})
    close_rates = sorted({k[4] for k in cells if k[2] == "close" and k[3] == "oha"})
    ka_wrk, close_wrk = ("", "keepalive", "wrk", 0), ("", "close", "wrk", 0)
    rows = [(f"server µs/req at max (wrk c{wrk_conns})", ka_wrk, "srv_us_per_req"),
            (f"max req/s (wrk c{wrk_conns})", ka_wrk, "rps")]
    for q in rates:
        c, k = ("", "keepalive", "oha", q), rate_label(q)
        rows += [(f"server µs/req at {k} (oha)", c, "srv_us_per_req"), (f"achieved req/s at {k}", c, "rps"),
                 (f"p50 ms at {k}", c, "p50"), (f"p99 ms at {k}", c, "p99"), (f"p99.9 ms at {k}", c, "p999")]
    rows += [(f"close: max conn/s (wrk c{wrk_conns})", close_wrk, "rps"),
             ("close: server µs/req at max", close_wrk, "srv_us_per_req")]
    for q in close_rates:
        c, k = ("", "close", "oha", q), rate_label(q)
        rows += [(f"close {k}/s (oha): p50 ms", c, "p50"), (f"close {k}/s (oha): p99 ms", c, "p99"),
                 (f"close {k}/s (oha): p99.9 ms", c, "p999")]
    extra = 2 + has_base + len(variants)
    out = [f"| metric | {' | '.join(servers)} | dcsd/nginx | dcsd/minpixel |" + (" dcsd/base |" if has_base else "")
           + "".join(f" {x}/dcsd |" for x in variants),
           "|---|" + "---|" * (len(servers) + extra)]
    for label, cell, what in rows:
        v = {s: median(cells, (s,) + cell, what) for s in servers}
        line = f"| {label} | {' | '.join(table_value(v[s], what) for s in servers)} "
        line += f"| {ratio(v['dcsd'], v['nginx'])} | {ratio(v['dcsd'], v['minpixel'])} |"
        if has_base:
            line += f" {ratio(v['dcsd'], v['base'])} |"
        line += "".join(f" {ratio(v[x], v['dcsd'])} |" for x in variants)
        out.append(line)
    out.append(errors_row(cells, servers, extra))
    return "\n".join(out) + "\n"


def errors_row(cells, servers, extra_cols):
    errs = []
    for s in servers:
        runs = [m for k, c in cells.items() if k[0] == s for m in c["runs"]]
        errs.append(str(sum(m["errors"] for m in runs)) if runs else "–")
    return f"| errors (all recorded runs) | {' | '.join(errs)} |" + " |" * extra_cols


# ---------------------------------------------------------------- table.md, partner mode


def partner_table(cells):
    order = ["direct", "nginx"]
    dcsds = [s for s in OrderedDict.fromkeys(k[0] for k in cells) if s == "dcsd" or s.startswith("dcsd-p")]
    dcsds.sort(key=lambda s: 1 if s == "dcsd" else int(s[len("dcsd-p"):]))
    servers = [s for s in order if any(k[0] == s for k in cells)] + dcsds
    has_base = any(k[0] == "base" for k in cells)
    if has_base:
        servers.append("base")
    has_nginx = "nginx" in servers
    ratio_cols = [(d, "nginx") for d in dcsds if has_nginx] + ([("dcsd", "base")] if has_base else [])
    cases = list(OrderedDict.fromkeys(k[1] for k in cells))
    cases.sort(key=lambda c: c == "hang")  # the hung-partner rows last
    head = f"| metric | {' | '.join(servers)} |" + "".join(f" {a}/{b} |" for a, b in ratio_cols)
    out = [head, "|---|" + "---|" * (len(servers) + len(ratio_cols))]
    for case in cases:
        rates = sorted({k[4] for k in cells if k[1] == case and k[3] == "oha"})
        for q in rates:
            where = f"{case_label(case)}, {rate_label(q)}"
            rows = [(f"{where}: server µs/req", "srv_us_per_req"),
                    (f"{where}: partner stand-in µs/req", "extra_us_per_req"),
                    (f"{where}: achieved req/s", "rps"),
                    (f"{where}: p50 ms", "p50"), (f"{where}: p99 ms", "p99"), (f"{where}: p99.9 ms", "p999")]
            for label, what in rows:
                v = {s: median(cells, (s, case, "keepalive", "oha", q), what) for s in servers}
                if what == "extra_us_per_req" and "direct" in v:
                    v["direct"] = None  # direct runs count the stand-in as the server
                line = f"| {label} | {' | '.join(table_value(v[s], what) for s in servers)} |"
                line += "".join(f" {ratio(v.get(a), v.get(b))} |" for a, b in ratio_cols)
                out.append(line)
    out.append(errors_row(cells, servers, len(ratio_cols)))
    notes = []
    if "direct" in servers:
        notes.append("- direct: the load generator calls the stand-in itself; its server µs/req is the stand-in's.")
    # Cost of one more partner call: the slope of dcsd's CPU per request over the number of
    # real-time data sources per request, between the fewest and the most.
    counts = sorted((1 if s == "dcsd" else int(s[len("dcsd-p"):]), s) for s in dcsds)
    if len(counts) >= 2:
        (n0, s0), (n1, s1) = counts[0], counts[-1]
        for case in cases:
            for q in sorted({k[4] for k in cells if k[1] == case and k[0] == s1}):
                a = median(cells, (s0, case, "keepalive", "oha", q), "srv_us_per_req")
                b = median(cells, (s1, case, "keepalive", "oha", q), "srv_us_per_req")
                if a is not None and b is not None:
                    notes.append(f"- {case_label(case)}, {rate_label(q)}: dcsd µs per extra partner call "
                                 f"(({s1} − {s0}) / {n1 - n0}) = {(b - a) / (n1 - n0):.2f}")
    return "\n".join(out) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run_dir = sys.argv[1].rstrip("/")
    cells, anchor = read_cells(run_dir)
    if not cells:
        sys.exit(f"{run_dir}: no recorded runs")
    with open(os.path.join(run_dir, "summary.md"), "w") as f:
        f.write(summary(run_dir, cells))
    table = partner_table(cells) if anchor == "P" else pixel_table(cells)
    with open(os.path.join(run_dir, "table.md"), "w") as f:
        f.write(table)
    print(table, end="")


if __name__ == "__main__":
    main()
