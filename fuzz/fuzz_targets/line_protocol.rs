//! Fuzz target: the InfluxDB line-protocol reader on arbitrary bodies — it must never
//! panic, and what a line gives (a point or an error) must hold together and borrow only
//! from that line.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    iocdb_proto::line_protocol::check_lines(data);
});
