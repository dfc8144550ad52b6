//! Compiles `proto/iocdb/v1/*.proto` with protox (a pure-Rust protobuf compiler, so no
//! `protoc` needs installing) and generates prost messages and tonic services. Also writes
//! the encoded descriptor set, which the server's reflection service serves.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/iocdb/v1/iocdb.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("iocdb_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .codec_path("crate::codec::IocdbCodec")
        .compile_fds(fds.clone())?;
    // The server's services once more, with `WriteRequest` taken as its bytes
    // (`ingest_view.rs`), every other message the one generated above.
    let server = out.join("server");
    std::fs::create_dir_all(&server)?;
    tonic_prost_build::configure()
        .codec_path("crate::codec::IocdbCodec")
        .build_client(false)
        .out_dir(&server)
        .extern_path(
            ".iocdb.v1.WriteRequest",
            "crate::ingest_view::WriteRequestBytes",
        )
        .extern_path(".iocdb.v1", "crate::v1")
        .compile_fds(fds)?;
    Ok(())
}
