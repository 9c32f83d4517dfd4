//! Compiles the eBPF crate for the BPF target into `OUT_DIR` (aya-build runs cargo
//! again with the nightly toolchain, `-Z build-std=core` and bpf-linker).
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let metadata = aya_build::Package {
        name: "membrane-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../membrane-ebpf"),
        ..Default::default()
    };
    println!("cargo:rerun-if-changed=../membrane-common/src");
    aya_build::build_ebpf([metadata], aya_build::Toolchain::default())
        .context("building the eBPF programs failed: run `cargo xtask setup` to install nightly rust-src and bpf-linker")
}
