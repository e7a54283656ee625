#!/usr/bin/env python3
"""Writes the dcsd configuration of a `benches/load.sh --partner` cell: OUT_DIR/dcsd.toml and
OUT_DIR/taxonomy.json (formats: README "Configuration" and "Taxonomy").

usage: partner-config.py OUT_DIR PARTNERS URL_TEMPLATE

One customer (hosts localhost and 127.0.0.1) owns a first-party data source (DPID 1, trait 1234,
the benchmark request's `d_sid`) and PARTNERS real-time data sources (DPIDs 701, 702, ...), each
calling URL_TEMPLATE (for example `http://127.0.0.1:18190/segments?uid=${UUID}`), each with a
trait that any segment the partner returns realizes (`segment matchesregex "."`; 9001, 9002,
...); segment 984263 = 1234T AND any partner trait. So every request without a `demdex` cookie
(a new profile, nothing cached) calls every partner once, and what they answer is used.

The partner settings come from the environment (defaults in bench.env): PARTNER_TIMEOUT_MS,
PARTNER_POOL (max_conns_per_core), PARTNER_BREAKER_FAILURES, PARTNER_BREAKER_OPEN_MS and
PARTNER_BUDGET_MS ([partners] budget_ms).
"""
import json
import os
import sys


def env_int(name, default):
    return int(os.environ.get(name, default))


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    out_dir, partners, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if partners < 1:
        sys.exit("PARTNERS must be at least 1")
    realtime = {
        "url": url,
        "method": "GET",
        "timeout_ms": env_int("PARTNER_TIMEOUT_MS", 50),
        "ttl_s": 3600,
        "max_conns_per_core": env_int("PARTNER_POOL", 256),
        "idle_timeout_ms": 30000,
        "headers": {},
        "breaker": {"failures": env_int("PARTNER_BREAKER_FAILURES", 20),
                    "open_ms": env_int("PARTNER_BREAKER_OPEN_MS", 1000)},
    }
    sources = [{"dpid": 1, "ic": "bench-first-party", "owner": 1}]
    traits = [{"sid": 1234, "dpid": 1, "name": "d_sid of the benchmark request", "rule": None}]
    for i in range(1, partners + 1):
        sources.append({"dpid": 700 + i, "ic": f"partner-{i}", "owner": 1, "realtime": realtime})
        traits.append({"sid": 9000 + i, "dpid": 700 + i, "name": f"partner {i} returned a segment",
                       "rule": 'segment matchesregex "."'})
    any_partner = " OR ".join(f"{9000 + i}T" for i in range(1, partners + 1))
    taxonomy = {
        "version": f"benches/load.sh --partner, {partners} real-time partner(s)",
        "customers": [{"id": 1, "name": "bench", "hosts": ["localhost", "127.0.0.1"], "cts": True}],
        "data_sources": sources,
        "traits": traits,
        "segments": [{"sid": 984263, "customer": 1, "rule": f"1234T AND ({any_partner})"}],
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "taxonomy.json"), "w") as f:
        json.dump(taxonomy, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, "dcsd.toml"), "w") as f:
        f.write(f"# benches/load.sh --partner: {partners} real-time partner(s) at {url}\n"
                "[server]\n"
                'taxonomy = "taxonomy.json"\n'
                "\n"
                "[partners]\n"
                f"budget_ms = {env_int('PARTNER_BUDGET_MS', 80)}\n")


if __name__ == "__main__":
    main()
