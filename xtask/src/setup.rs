//! `cargo xtask setup`: checks every prerequisite, installs what is missing, and says
//! what it checked and did. Running it again changes nothing.

use crate::cmd::{self, cargo_bin_dir, path_with_cargo_bin};
use anyhow::{Context, bail};
use membrane_testbed::host;
use std::process::Command;

/// Debian packages the build, the tests and the demo need.
const APT_PACKAGES: [&str; 10] = [
    // bpf-linker links eBPF objects against LLVM 22.
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    // The multi-node state backend.
    "etcd-server",
    // etcd-client compiles etcd's protobuf API at build time (protoc and the well-known
    // types such as google/protobuf/descriptor.proto).
    "protobuf-compiler",
    "libprotobuf-dev",
    // Baselines of the benchmarks (kube-proxy-shaped rules).
    "iptables",
    "nftables",
    // For people who inspect the test bed's namespaces by hand.
    "iproute2",
];

/// Where LLVM 22 is installed by `llvm-22-dev`.
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

/// The oldest kernel with everything the datapath uses (tcx links, bpf_redirect_peer,
/// cgroup sock_addr hooks for both families).
const MIN_KERNEL: (u32, u32) = (6, 6);

/// Runs every check in order.
pub fn run() -> anyhow::Result<()> {
    check_root()?;
    check_kernel()?;
    apt_packages()?;
    nightly_rust_src()?;
    bpf_linker()?;
    bpffs()?;
    cgroup2()?;
    println!("setup: everything is in place");
    Ok(())
}

fn check_root() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("run as root: the test bed creates network namespaces, cgroups and eBPF programs");
    }
    println!("setup: running as root ... ok");
    Ok(())
}

/// `major.minor` of a kernel release string such as `6.18.44-fc`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn check_kernel() -> anyhow::Result<()> {
    let uname = nix::sys::utsname::uname().context("uname failed")?;
    let release = uname.release().to_string_lossy().into_owned();
    let version = kernel_version(&release)
        .with_context(|| format!("cannot read kernel version {release}"))?;
    if version < MIN_KERNEL {
        bail!(
            "kernel {release} is too old: Membrane needs {}.{} or newer",
            MIN_KERNEL.0,
            MIN_KERNEL.1
        );
    }
    println!(
        "setup: kernel {release} (need {}.{}+) ... ok",
        MIN_KERNEL.0, MIN_KERNEL.1
    );
    Ok(())
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| {
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains("install ok installed")
        })
}

fn apt_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        println!("setup: Debian packages {} ... ok", APT_PACKAGES.join(" "));
        return Ok(());
    }
    println!("setup: installing Debian packages {}", missing.join(" "));
    cmd::run(
        Command::new("apt-get")
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn rustup(args: &[&str]) -> Command {
    let mut command = Command::new("rustup");
    command.args(args).env("PATH", path_with_cargo_bin());
    command
}

fn rustup_lists(args: &[&str], wanted: &str) -> anyhow::Result<bool> {
    let out = rustup(args)
        .output()
        .with_context(|| format!("cannot run rustup {}", args.join(" ")))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|line| line.starts_with(wanted)))
}

fn nightly_rust_src() -> anyhow::Result<()> {
    if rustup_lists(&["toolchain", "list"], "nightly")? {
        println!("setup: nightly toolchain (builds the eBPF programs) ... ok");
    } else {
        println!("setup: installing the nightly toolchain (builds the eBPF programs)");
        cmd::run(&mut rustup(&[
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if rustup_lists(
        &["component", "list", "--toolchain", "nightly", "--installed"],
        "rust-src",
    )? {
        println!("setup: nightly rust-src (build-std for the bpf target) ... ok");
        Ok(())
    } else {
        println!("setup: adding rust-src to the nightly toolchain");
        cmd::run(&mut rustup(&[
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))
    }
}

fn bpf_linker() -> anyhow::Result<()> {
    let on_path =
        std::env::split_paths(&path_with_cargo_bin()).any(|dir| dir.join("bpf-linker").is_file());
    if on_path {
        println!("setup: bpf-linker ... ok");
        return Ok(());
    }
    println!(
        "setup: installing bpf-linker into {} (builds against LLVM 22, takes a few minutes)",
        cargo_bin_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    cmd::run(
        Command::new(cargo)
            .args([
                "install",
                "bpf-linker",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .env("PATH", path_with_cargo_bin()),
    )
}

fn bpffs() -> anyhow::Result<()> {
    host::ensure_bpffs().context("cannot mount bpffs")?;
    println!("setup: bpffs mounted at {} ... ok", host::BPFFS_ROOT);
    Ok(())
}

fn cgroup2() -> anyhow::Result<()> {
    let root = host::cgroup2_root()?;
    println!("setup: cgroup v2 hierarchy at {} ... ok", root.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_are_read_as_major_and_minor() {
        assert_eq!(kernel_version("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(kernel_version("6.1.0-13-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("garbage"), None);
    }

    #[test]
    fn version_order_compares_major_before_minor() {
        assert!((6, 18) >= MIN_KERNEL);
        assert!((6, 5) < MIN_KERNEL);
        assert!((7, 0) >= MIN_KERNEL);
    }
}
