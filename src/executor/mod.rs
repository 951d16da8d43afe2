//! The executor: a durable queue of outbound work and the background threads that run it.

pub mod queue;
pub mod worker;
