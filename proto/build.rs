//! Compiles the gRPC definitions with the bundled protoc, so a build needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure().compile_protos(
        &[
            "proto/metastore.proto",
            "proto/namenode.proto",
            "proto/records.proto",
            "proto/blockserver.proto",
            "proto/search.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
