//! The engine's integration tests, one binary, modules by theme.

// Tests index their own fixtures freely: a panic there is a failed test, not a crash on input.
#![allow(clippy::indexing_slicing)]

mod churn;
mod common;
mod compaction;
mod completeness;
mod corruption;
mod crash;
mod delete;
mod faults;
mod format_freeze;
mod fuzz_corpus;
mod model;
mod newest;
mod ordering;
mod orphans;
mod promql_files;
mod quality;
mod query;
mod query_cache;
mod rollups;
mod rooms;
mod snapshot;
mod verify;
mod watch;
mod write_select;
