//! The in-place readers' fuzz targets' committed seeds (`fuzz/corpus/<target>/`) replay
//! here as tests, so that the cases the fuzzer started from stay checked in every suite.

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let files: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()))
        .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
        .collect();
    assert!(
        files.len() >= 4,
        "corpus {} has {} files",
        dir.display(),
        files.len()
    );
    files
}

#[test]
fn the_remote_write_reader_agrees_with_prost_on_its_corpus() {
    for data in corpus("remote_write_decode") {
        iocdb_proto::prompb::view::check_against_prost(&data);
    }
}

#[test]
fn the_ingest_reader_agrees_with_prost_on_its_corpus() {
    for data in corpus("ingest_decode") {
        iocdb_proto::ingest_view::check_against_prost(&data);
    }
}

#[test]
fn the_line_protocol_reader_holds_together_on_its_corpus() {
    for data in corpus("line_protocol") {
        iocdb_proto::line_protocol::check_lines(&data);
    }
}
