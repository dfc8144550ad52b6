//! The side-by-side tools: `peer_compare` (dashboard queries and answers against
//! VictoriaMetrics and Prometheus, iocdb in-process), `http_compare` (all three loaded by
//! remote write and asked over the same HTTP API, one at a time), `memory_compare`
//! (server RSS around ingest and flush against VictoriaMetrics) and the other tools in
//! `src/bin`, sharing [`peers`], [`answers`], [`spool`] and [`lean_grpc`].

pub mod answers;
pub mod lean_grpc;
pub mod peers;
pub mod spool;
