//! Route handlers. Each appends one complete response and returns its status.

mod admin;
mod event;

pub use admin::{healthz, metrics};
pub use event::event;
