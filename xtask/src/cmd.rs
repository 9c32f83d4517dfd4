//! Running commands: cargo with the tools the build needs on `PATH`, the workspace's own
//! binaries, and phase banners so the output says what is running.

use anyhow::{Context, bail};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Numbered phase banners: `==> [2/3] build ...`.
pub struct Phases {
    total: usize,
    current: usize,
}

impl Phases {
    /// Banners for `total` phases.
    pub fn new(total: usize) -> Phases {
        Phases { total, current: 0 }
    }

    /// Announces the next phase.
    pub fn start(&mut self, what: &str) {
        self.current += 1;
        println!("\n==> [{}/{}] {what}", self.current, self.total);
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// `~/.cargo/bin`, where `cargo install` puts bpf-linker.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin"))
}

/// `PATH` with `~/.cargo/bin` in front, so bpf-linker and rustup are found.
pub fn path_with_cargo_bin() -> OsString {
    let mut dirs: Vec<PathBuf> = cargo_bin_dir().into_iter().collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// Runs `command`, failing unless it exits 0.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// `cargo <args>` in the workspace root.
pub fn cargo(args: &[String]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("$ cargo {}", args.join(" "));
    run(Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .env("PATH", path_with_cargo_bin()))
}

/// Runs the workspace's binary `name` from `target/<profile>/`.
pub fn run_binary(profile: &str, name: &str, args: &[String]) -> anyhow::Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let binary = target.join(profile).join(name);
    println!("$ {} {}", binary.display(), args.join(" "));
    run(Command::new(&binary)
        .args(args)
        .current_dir(workspace_root()))
}
