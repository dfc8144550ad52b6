//! The side-by-side tools: `peer_compare` (dashboard queries and answers against
//! VictoriaMetrics and Prometheus) and `memory_compare` (server RSS around ingest and flush
//! against VictoriaMetrics), sharing [`peers`].

pub mod peers;
