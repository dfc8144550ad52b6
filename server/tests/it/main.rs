//! Integration tests of the real `iocdb` binary: each starts the server as a child process on
//! an ephemeral loopback port and talks to it with a real tonic client.

// Tests index their own fixtures freely: a panic there is a failed test.
#![allow(clippy::indexing_slicing)]

mod api_shape;
mod authz;
mod bad_input;
mod browser;
mod cardinality;
mod cli;
mod compaction_kills;
mod console;
mod crash_order;
mod delete;
mod demo;
mod fairness;
mod harness;
mod http_api;
mod ingest;
mod lifecycle;
mod limits;
mod peers;
mod promql_diff;
mod quality;
mod query;
mod real_clients;
mod self_metrics;
mod soak;
mod tls;
mod torture;
mod transfer;
