//! Route handlers. Each appends one complete response and returns its status.

mod admin;
mod event;
mod ibs;
mod identity;
mod optout;
mod render;

pub use admin::{healthz, metrics};
pub use event::event;
pub use ibs::ibs;
pub use optout::optout;
