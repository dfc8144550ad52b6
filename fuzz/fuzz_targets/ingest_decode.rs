//! Fuzz target: the in-place `iocdb.v1.WriteRequest` reader on arbitrary bytes — it must
//! never panic, and it must read exactly what prost reads wherever prost reads anything.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    iocdb_proto::ingest_view::check_against_prost(data);
});
