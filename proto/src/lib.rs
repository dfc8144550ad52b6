//! The wire types: the iocdb gRPC API, generated from `proto/iocdb/v1/iocdb.proto`, the
//! codec its services use ([`codec`]), Prometheus' remote write and read messages
//! ([`prompb`]), the in-place reading of the protobuf wire format that the hot write
//! messages' readers share ([`wire`]), and InfluxDB's line protocol ([`line_protocol`]). Nothing else lives here: conversion to engine types is the server's
//! business.

#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

pub mod codec;
pub mod ingest_view;
pub mod line_protocol;
pub mod prompb;
pub mod wire;

/// Package `iocdb.v1`.
pub mod v1 {
    tonic::include_proto!("iocdb.v1");

    /// The encoded file descriptor set of the package, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/iocdb_v1_descriptor.bin"));
}

/// The services of package `iocdb.v1` as the server implements them: the same as
/// [`v1`]'s, except that `Ingest` takes each `WriteRequest` as its bytes
/// ([`ingest_view::WriteRequestBytes`]) to read it in place.
pub mod v1_server {
    include!(concat!(env!("OUT_DIR"), "/server/iocdb.v1.rs"));
}
