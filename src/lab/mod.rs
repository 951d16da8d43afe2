//! Tools apart from the product: the demo, the routing simulation and real-history replay,
//! and the benchmarks. They drive the real server, decision and learning code; nothing in the
//! product depends on them.

pub mod bench;
pub mod demo;
pub mod simulate;
