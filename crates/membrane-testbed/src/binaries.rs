//! Finds the project's binaries (agent, CNI plugin, workload) that tests exec.

use std::path::{Path, PathBuf};

/// Environment variable naming the directory of the binaries, overriding the default.
pub const BIN_DIR_ENV: &str = "MEMBRANE_BIN_DIR";

/// The node agent.
pub const AGENT: &str = "membrane-agent";
/// The CNI plugin.
pub const CNI_PLUGIN: &str = "membrane-cni";
/// The traffic generator and server.
pub const WORKLOAD: &str = "membrane-workload";
/// The `membrane` command line.
pub const CLI: &str = "membrane";

/// A binary the test bed needs is not built.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name} is not built (looked for {path}): run `cargo build --workspace --bins` first \
     (`cargo xtask test` does), or set {BIN_DIR_ENV} to the directory holding it"
)]
pub struct MissingBinary {
    /// The binary's name.
    pub name: String,
    /// Where it was looked for.
    pub path: PathBuf,
}

/// The directory holding the workspace's binaries: `$MEMBRANE_BIN_DIR` if set, else the
/// cargo profile directory of the running executable (`target/<profile>/`, also when
/// the executable is a test in `target/<profile>/deps/`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    profile_dir(&exe)
}

fn profile_dir(exe: &Path) -> PathBuf {
    let dir = exe.parent().unwrap_or(Path::new("."));
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The path of binary `name` in [`bin_dir`], if it exists.
pub fn locate(name: &str) -> Result<PathBuf, MissingBinary> {
    let path = bin_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(MissingBinary {
            name: name.to_string(),
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_executable_in_deps_finds_binaries_one_level_up() {
        let dir = profile_dir(Path::new("/w/target/debug/deps/node-0123abcd"));
        assert_eq!(dir, Path::new("/w/target/debug"));
    }

    #[test]
    fn a_binary_in_the_profile_dir_finds_its_siblings() {
        let dir = profile_dir(Path::new("/w/target/release/membrane-demo"));
        assert_eq!(dir, Path::new("/w/target/release"));
    }

    #[test]
    fn the_missing_binary_error_says_how_to_build_it() {
        let message = MissingBinary {
            name: "membrane-agent".into(),
            path: "/x".into(),
        }
        .to_string();
        assert!(message.contains("membrane-agent"), "{message}");
        assert!(
            message.contains("cargo build --workspace --bins"),
            "{message}"
        );
    }
}
