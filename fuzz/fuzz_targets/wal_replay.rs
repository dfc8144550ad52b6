//! Fuzz target: `iocdb_engine::internal::replay_wal` on arbitrary bytes (must never panic).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    iocdb_engine::internal::replay_wal(data);
});
