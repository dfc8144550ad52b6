//! The `remote_write_decode` fuzz target's committed seeds (`fuzz/corpus/`) replay here as
//! tests, so that the cases the fuzzer started from stay checked in every suite.

#[test]
fn the_remote_write_reader_agrees_with_prost_on_its_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/remote_write_decode");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(
        files.len() >= 4,
        "corpus {} has {} files",
        dir.display(),
        files.len()
    );
    for path in files {
        let data = std::fs::read(&path).expect("read");
        iocdb_proto::prompb::view::check_against_prost(&data);
    }
}
