//! Compiles `proto/` with protox (no `protoc` needed) into tonic clients and servers.

const PROTOS: &[&str] = &[
    "lamina/common/v1/common.proto",
    "lamina/exechost/v1/exec_host.proto",
    "lamina/codestorage/v1/code_storage.proto",
    "lamina/router/v1/invoke_router.proto",
    "lamina/queue/v1/async_queue.proto",
    "lamina/metadata/v1/metadata.proto",
    "lamina/events/v1/event_sources.proto",
    "lamina/observability/v1/observability.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary reused from another checkout must not compile that one's protos.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let fds = protox::compile(PROTOS, [&root])?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
