//! Route handlers. Each appends one complete response and returns its status.

mod admin;
mod event;
mod ibs;
mod identity;
mod later;
mod optout;
pub(crate) mod render;
mod reply;

pub use admin::{healthz, metrics};
pub use event::{event, Reply};
pub use ibs::ibs;
pub use identity::now_s;
pub use optout::optout;
