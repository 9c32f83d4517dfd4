//! The CNI network configuration the agent installs for the container runtime.

use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the file, early in the directory's order so runtimes pick it first.
pub const CONFLIST_NAME: &str = "05-membrane.conflist";

/// Errors of writing the configuration.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the CNI configuration {path}")]
pub struct CniConfError {
    /// The file or directory that failed.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// The configuration list: one `membrane-cni` plugin that calls the agent at `socket`.
pub fn conflist(socket: &Path) -> serde_json::Value {
    json!({
        "cniVersion": "1.1.0",
        "name": "membrane",
        "plugins": [{ "type": "membrane-cni", "agentSocket": socket }],
    })
}

/// Writes [`conflist`] to `<dir>/05-membrane.conflist` atomically (a temporary file in the
/// same directory, synced, then renamed over it), so a runtime never reads half a file.
pub fn install(dir: &Path, socket: &Path) -> Result<PathBuf, CniConfError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CniConfError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(fail(dir))?;
    let target = dir.join(CONFLIST_NAME);
    // A leading dot and no .conf/.conflist/.json suffix: runtimes ignore the temporary.
    let temporary = dir.join(format!(".{CONFLIST_NAME}.{}.tmp", std::process::id()));
    let mut text = serde_json::to_vec_pretty(&conflist(socket)).expect("JSON values serialize");
    text.push(b'\n');
    let written = std::fs::File::create(&temporary)
        .and_then(|mut file| file.write_all(&text).and_then(|()| file.sync_all()));
    if let Err(source) = written.and_then(|()| std::fs::rename(&temporary, &target)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail(&target)(source));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflist_names_the_plugin_and_the_agent_socket_only() {
        let dir = tempfile::tempdir().unwrap();
        let conf_dir = dir.path().join("net.d");
        let path = install(&conf_dir, Path::new("/run/membrane/a.sock")).unwrap();
        assert_eq!(path, conf_dir.join("05-membrane.conflist"));
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            written,
            json!({"cniVersion": "1.1.0", "name": "membrane",
                   "plugins": [{"type": "membrane-cni", "agentSocket": "/run/membrane/a.sock"}]})
        );
        // Written again over itself, and no temporary left behind.
        install(&conf_dir, Path::new("/run/membrane/b.sock")).unwrap();
        let names: Vec<_> = std::fs::read_dir(&conf_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("05-membrane.conflist")]
        );
    }
}
