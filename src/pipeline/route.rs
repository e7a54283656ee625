//! Routing: path (and listener) → [`Route`]; which methods each route takes.

use crate::http::conn::ListenerKind;
use crate::http::Method;

/// A route; the discriminant is the metrics label index ([`crate::metrics::ROUTES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Route {
    /// `/event`
    Event = 0,
    /// `/ibs:…` (ID sync)
    Ibs = 1,
    /// `/demoptout`, `/demoptout.jpg`
    Optout = 2,
    /// `/healthz`
    Healthz = 3,
    /// `/metrics`
    Metrics = 4,
    /// Anything else.
    NotFound = 5,
}

// === impl Route ===

impl Route {
    /// Routes `path` for a connection accepted on a listener of `kind`.
    pub fn of(path: &[u8], kind: ListenerKind) -> Route {
        let r = match path {
            b"/event" => Route::Event,
            [b'/', b'i', b'b', b's', b':', ..] | b"/ibs" => Route::Ibs,
            b"/demoptout" | b"/demoptout.jpg" => Route::Optout,
            b"/healthz" => Route::Healthz,
            b"/metrics" => Route::Metrics,
            _ => Route::NotFound,
        };
        let admin_route = matches!(r, Route::Healthz | Route::Metrics);
        match kind {
            ListenerKind::All => r,
            ListenerKind::Public if admin_route => Route::NotFound,
            ListenerKind::Admin if !admin_route => Route::NotFound,
            _ => r,
        }
    }

    /// The `Allow` header value for this route.
    pub fn allow(self) -> &'static str {
        match self {
            Route::Event => "GET, HEAD, POST, OPTIONS",
            Route::Ibs | Route::Optout => "GET, HEAD, OPTIONS",
            Route::Healthz | Route::Metrics => "GET, HEAD",
            Route::NotFound => "GET, HEAD, POST, OPTIONS",
        }
    }

    /// `Access-Control-Allow-Methods` of a DCS route's preflight (docs/http-api.md §7).
    pub fn cors_methods(self) -> &'static str {
        match self {
            Route::Event | Route::NotFound => "GET, POST, OPTIONS",
            Route::Ibs | Route::Optout | Route::Healthz | Route::Metrics => "GET, OPTIONS",
        }
    }

    /// Whether the route is a DCS call (rate limited), as opposed to an admin or unknown path.
    pub fn is_dcs(self) -> bool {
        matches!(self, Route::Event | Route::Ibs | Route::Optout)
    }

    /// Whether the route takes `m`.
    pub fn allows(self, m: Method) -> bool {
        match self {
            Route::Event | Route::NotFound => true,
            // OPTIONS on any DCS path is the CORS preflight (docs/http-api.md §1, §7).
            Route::Ibs | Route::Optout => matches!(m, Method::Get | Method::Head | Method::Options),
            Route::Healthz | Route::Metrics => matches!(m, Method::Get | Method::Head),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_listener_separates_routes() {
        assert_eq!(Route::of(b"/event", ListenerKind::All), Route::Event);
        assert_eq!(Route::of(b"/metrics", ListenerKind::All), Route::Metrics);
        assert_eq!(Route::of(b"/metrics", ListenerKind::Public), Route::NotFound);
        assert_eq!(Route::of(b"/event", ListenerKind::Admin), Route::NotFound);
        assert_eq!(Route::of(b"/healthz", ListenerKind::Admin), Route::Healthz);
        assert_eq!(Route::of(b"/events", ListenerKind::All), Route::NotFound);
        assert_eq!(Route::of(b"/ibs:dpid=1&dpuuid=2", ListenerKind::Public), Route::Ibs);
        assert_eq!(Route::of(b"/ibsx", ListenerKind::Public), Route::NotFound);
        assert_eq!(Route::of(b"/demoptout.jpg", ListenerKind::Public), Route::Optout);
        assert_eq!(Route::of(b"/demoptout", ListenerKind::Admin), Route::NotFound);
        assert!(!Route::Healthz.allows(Method::Post));
        assert!(!Route::Healthz.allows(Method::Options));
    }

    #[test]
    fn options_is_the_preflight_on_every_dcs_route() {
        for r in [Route::Event, Route::Ibs, Route::Optout] {
            assert!(r.allows(Method::Options) && r.allow().ends_with("OPTIONS"), "{r:?}");
        }
        assert!(!Route::Ibs.allows(Method::Post) && !Route::Optout.allows(Method::Post));
        assert_eq!(Route::Ibs.allow(), "GET, HEAD, OPTIONS");
    }
}
