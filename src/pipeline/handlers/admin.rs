//! `/healthz` and `/metrics`.

use crate::http::conn::Request;
use crate::http::Method;

use super::super::{Dcs, Plain};

/// `200 ok` while serving, `503 draining` while draining (http-api §2).
pub fn healthz(dcs: &Dcs, req: &Request<'_>, out: &mut Vec<u8>) -> u16 {
    let head_only = req.head.method == Method::Head;
    let (status, body): (u16, &[u8]) = if req.draining { (503, b"draining\n") } else { (200, b"ok\n") };
    dcs.plain(out, Plain { status, body, allow: None, conn: req.conn, head_only }, req.now);
    status
}

/// Prometheus text exposition of every core's metrics, summed now.
pub fn metrics(dcs: &Dcs, req: &Request<'_>, out: &mut Vec<u8>) -> u16 {
    let mut text = String::with_capacity(4096);
    dcs.shared.metrics.render(&mut text);
    let profiles = dcs.shared.table.len();
    text.push_str("# HELP dcsd_profiles Profiles in the table.\n# TYPE dcsd_profiles gauge\n");
    text.push_str(&format!("dcsd_profiles {profiles}\n"));
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
