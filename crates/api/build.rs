//! Compiles the etcd v3 protos under `<workspace>/proto` into Rust (prost
//! messages plus tonic clients and servers), writes a file descriptor set
//! next to the generated code, and generates serde impls for the messages
//! from it (pbjson: proto3 JSON as etcd's gRPC gateway speaks it).

use std::env;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "etcd/api/mvccpb/kv.proto",
    "etcd/api/authpb/auth.proto",
    "etcd/api/etcdserverpb/rpc.proto",
    "etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
    "etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto").canonicalize()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| proto_root.join(p)).collect();
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-changed=build.rs");

    let descriptor_path = out_dir.join("retcd_descriptor.bin");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .file_descriptor_set_path(&descriptor_path)
        .compile_protos(&protos, &[proto_root])?;

    // The Watch service once more, server side only, with a codec whose responses may carry
    // events encoded beforehand: one revision's events are encoded once for all the
    // watchers of a stream instead of once per watcher (`src/watch_frame.rs`).
    let watch = tonic_build::manual::Service::builder()
        .name("Watch")
        .package("etcdserverpb")
        .method(
            tonic_build::manual::Method::builder()
                .name("watch")
                .route_name("Watch")
                .input_type("crate::etcdserverpb::WatchRequest")
                .output_type("crate::watch_frame::WatchFrame")
                .codec_path("tonic_prost::ProstCodec")
                .client_streaming()
                .server_streaming()
                .build(),
        )
        .build();
    tonic_build::manual::Builder::new()
        .build_client(false)
        .build_server(true)
        .compile(&[watch]);

    // etcd's gateway marshals with jsonpb `OrigName: true` (proto field names such as
    // `create_revision`, `ID`, `peerURLs`), omits default values, writes enums by name and
    // 64-bit integers as strings, and ignores unknown fields when decoding.
    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&[
            ".mvccpb",
            ".authpb",
            ".etcdserverpb",
            ".v3lockpb",
            ".v3electionpb",
        ])?;
    Ok(())
}
