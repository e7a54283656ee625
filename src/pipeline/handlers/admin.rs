//! `/healthz` and `/metrics`.

use crate::http::conn::Request;
use crate::http::Method;
use crate::table::ProfileTable;

use super::super::{Dcs, Plain};

/// `200 ok` while serving, `503 draining` while draining (http-api §2).
pub fn healthz(dcs: &Dcs, req: &Request<'_>, out: &mut Vec<u8>) -> u16 {
    let head_only = req.head.method == Method::Head;
    let (status, body): (u16, &[u8]) = if req.draining { (503, b"draining\n") } else { (200, b"ok\n") };
    dcs.plain(out, Plain { status, body, allow: None, conn: req.conn, head_only }, req.now);
    status
}

/// The profile table's gauges and counters, in Prometheus text format.
fn table_metrics(table: &ProfileTable, text: &mut String) {
    use std::fmt::Write;
    let (declared, ecids) = table.mapping_len();
    let snap = table.snapshot_report();
    let series: [(&str, &str, &str, String); 8] = [
        ("dcsd_profiles", "gauge", "Profiles in the table.", format!(" {}", table.len())),
        (
            "dcsd_profile_capacity",
            "gauge",
            "Most profiles the table keeps: store.max_profiles rounded up to whole shards.",
            format!(" {}", table.capacity()),
        ),
        (
            "dcsd_id_mappings",
            "gauge",
            "Declared-ID and ECID mappings in the table.",
            format!("{{kind=\"declared\"}} {declared}\ndcsd_id_mappings{{kind=\"ecid\"}} {ecids}"),
        ),
        (
            "dcsd_profiles_evicted_total",
            "counter",
            "Profiles dropped to stay within the table's capacity or a bucket's size, restore included.",
            format!(" {}", table.evicted()),
        ),
        (
            "dcsd_snapshot_last_success_timestamp_seconds",
            "gauge",
            "Unix time the last snapshot was written (0: none since start).",
            format!(" {}", snap.last_ok_s),
        ),
        (
            "dcsd_snapshot_last_duration_seconds",
            "gauge",
            "How long the last snapshot took to write, fsync included.",
            format!(" {:.6}", snap.last_duration.as_secs_f64()),
        ),
        (
            "dcsd_snapshot_last_bytes",
            "gauge",
            "Size of the last snapshot written.",
            format!(" {}", snap.last_bytes),
        ),
        (
            "dcsd_snapshot_failures_total",
            "counter",
            "Snapshot writes that failed (the previous file stays).",
            format!(" {}", snap.failures),
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{value}\n");
    }
}

/// Prometheus text exposition of every core's metrics, summed now.
pub fn metrics(dcs: &Dcs, req: &Request<'_>, out: &mut Vec<u8>) -> u16 {
    let mut text = String::with_capacity(4096);
    dcs.shared.metrics.render(&mut text);
    table_metrics(&dcs.shared.table, &mut text);
    dcs.start_response(out, 200, req.now);
    out.extend_from_slice(b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
    crate::http::response::push_content_length(out, text.len());
    crate::http::response::push_conn_header(out, req.conn);
    out.extend_from_slice(b"\r\n");
    if req.head.method != Method::Head {
        out.extend_from_slice(text.as_bytes());
    }
    200
}
