//! Benchmarks' shared parts: the province workload generator ([`workload`]) used by the
//! criterion benches, the engine report ([`report`]) and the server's `iocdb bench`.

// Benchmark code indexes its own generated tables; no untrusted bytes pass through here.
#![allow(clippy::indexing_slicing)]

pub mod dashboard;
pub mod load;
pub mod report;
pub mod workload;
