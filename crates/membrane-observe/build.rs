//! Compiles the Observer API's protobuf files (Hubble's wire format, written for
//! Membrane) into prost messages, tonic services and proto3-JSON serde impls.

use anyhow::Context as _;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR is not set")?);
    let descriptors = out.join("observer_descriptors.bin");
    let protos = [
        "proto/flow/flow.proto",
        "proto/relay/relay.proto",
        "proto/observer/observer.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptors)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_protos(&protos, &["proto"])
        .context("compiling the Observer protobuf files (is protoc installed? cargo xtask setup installs it)")?;
    let set = std::fs::read(&descriptors).context("reading the descriptor set")?;
    pbjson_build::Builder::new()
        .register_descriptors(&set)
        .context("registering the descriptors for JSON")?
        // Hubble prints proto field names (`pod_name`, `IP`), not lowerCamelCase.
        .preserve_proto_field_names()
        .build(&[".flow", ".relay", ".observer"])
        .context("generating the proto3 JSON mapping")?;
    Ok(())
}
