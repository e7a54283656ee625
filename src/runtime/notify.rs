//! systemd notifications (`sd_notify(3)`): `READY=1` once every core accepts, `STOPPING=1` on
//! drain, `RELOADING=1` around a reload. Without `NOTIFY_SOCKET` they are no-ops.

use std::os::unix::net::UnixDatagram;

/// Sends `state` to `$NOTIFY_SOCKET`, if set. Failures are logged, never fatal.
pub fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let res = UnixDatagram::unbound().and_then(|sock| {
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        } else {
            sock.send_to(state.as_bytes(), &path)
        }
    });
    if let Err(e) = res {
        crate::log!(Warn, "sd_notify {state:?} failed: {e}");
    }
}
