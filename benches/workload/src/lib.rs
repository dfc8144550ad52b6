//! # iocdb-workload
//!
//! The province's metrics as `shared/WORKLOAD.md` describes them ([`province`], re-exported
//! at the root) and the in-process ingest drivers that time them against an engine
//! ([`drive`]), and the live feed the demo sends ([`live`]). A small crate with no dependency beyond the engine, so that the server's
//! `iocdb bench` can carry it without bringing the benchmarks' tooling into production.

// Generator code indexes its own generated tables; no untrusted bytes pass through here.
#![allow(clippy::indexing_slicing)]

pub mod drive;
pub mod live;
pub mod province;

pub use province::*;
