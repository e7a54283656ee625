//! `/healthz` and `/metrics`.

use crate::http::conn::Request;
use crate::http::Method;
use crate::metrics::family;
use crate::table::ProfileTable;

use super::super::{Dcs, Plain};

/// `200 ok` while serving, `503 draining` while draining (docs/http-api.md §2).
pub fn healthz(dcs: &Dcs, req: &Request<'_>, out: &mut Vec<u8>) -> u16 {
    let head_only = req.head.method == Method::Head;
    let (status, body): (u16, &[u8]) = if req.draining { (503, b"draining\n") } else { (200, b"ok\n") };
    dcs.plain(out, Plain { status, body, allow: None, conn: req.conn, head_only }, req.now);
    status
}

/// The profile table's gauges and counters, in Prometheus text format.
fn table_metrics(table: &ProfileTable, out: &mut String) {
    let (declared, ecids) = table.mapping_len();
    let snap = table.snapshot_report();
    let duration = format!("{:.6}", snap.last_duration.as_secs_f64());
    family(out, "dcsd_profiles", "gauge", "Profiles in the table.", &[("", &table.len())]);
    family(
        out,
        "dcsd_profile_capacity",
        "gauge",
        "Most profiles the table keeps: store.max_profiles rounded up to whole shards.",
        &[("", &table.capacity())],
    );
    family(
        out,
        "dcsd_id_mappings",
        "gauge",
        "Declared-ID and ECID mappings in the table.",
        &[("{kind=\"declared\"}", &declared), ("{kind=\"ecid\"}", &ecids)],
    );
    family(
        out,
        "dcsd_profiles_evicted_total",
        "counter",
        "Profiles dropped to stay within the table's capacity or a bucket's size, restore included.",
        &[("", &table.evicted())],
    );
    family(
        out,
        "dcsd_snapshot_last_success_timestamp_seconds",
        "gauge",
        "Unix time the last snapshot was written (0: none since start).",
        &[("", &snap.last_ok_s)],
    );
    family(
        out,
        "dcsd_snapshot_last_duration_seconds",
        "gauge",
        "How long the last snapshot took to write, fsync included.",
        &[("", &duration)],
    );
    family(
        out,
        "dcsd_snapshot_last_bytes",
        "gauge",
        "Size of the last snapshot written.",
        &[("", &snap.last_bytes)],
    );
    family(
        out,
        "dcsd_snapshot_failures_total",
        "counter",
        "Snapshot writes that failed (the previous file stays).",
        &[("", &snap.failures)],
    );
    family(
        out,
        "dcsd_snapshot_shrink_guard_total",
        "counter",
        "Snapshots that held fewer than store.snapshot_shrink_ratio of the previous file's profiles; \
         that file was kept as <path>.previous first.",
        &[("", &snap.shrink_guards)],
    );
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
