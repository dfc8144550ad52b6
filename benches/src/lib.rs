//! Benchmarks' shared parts: the engine report ([`report`]) and the dashboard queries
//! ([`dashboard`]) behind the criterion benches and the report binaries. The province
//! workload generator lives in its own small crate (`benches/workload`, re-exported here as
//! [`workload`]) so that the server's `iocdb bench` can use it; the peer comparison is its
//! own binary crate (`benches/peer-compare`) with its HTTP client.

// Benchmark code indexes its own generated tables; no untrusted bytes pass through here.
#![allow(clippy::indexing_slicing)]

pub mod dashboard;
pub mod report;

pub use iocdb_workload as workload;
