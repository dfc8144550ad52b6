//! Fuzz target: the in-place remote-write reader on arbitrary bytes — it must never panic,
//! and it must read exactly what prost reads wherever prost reads anything.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    iocdb_proto::prompb::view::check_against_prost(data);
});
