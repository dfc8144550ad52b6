//! Fuzz target: `iocdb_engine::fuzzing::replay_wal` on arbitrary bytes (must never panic).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    iocdb_engine::fuzzing::replay_wal(data);
});
