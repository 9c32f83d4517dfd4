//! Reads manifests from files, directories and stdin, and checks them all locally
//! before anything is sent to the agent.

use crate::error::CliError;
use clap::Args as ClapArgs;
use membrane_model::{Object, parse_manifests};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where manifests come from; shared by `apply` and `delete`.
#[derive(Debug, ClapArgs)]
pub struct Sources {
    /// A manifest file, a directory of them (*.yaml, *.yml, *.json, in name order), or
    /// `-` for stdin. Repeat to give several.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// Also read the directories inside the directories given.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// One source's text and the name messages use for it.
struct Source {
    name: String,
    text: String,
}

impl Sources {
    /// Parses and validates every object of every source. All or nothing: if any
    /// document of any source is wrong, the error lists every problem found.
    pub fn load(&self) -> Result<Vec<Object>, CliError> {
        let mut sources = Vec::new();
        for path in &self.paths {
            read(path, self.recursive, &mut sources)?;
        }
        let mut objects = Vec::new();
        let mut errors = Vec::new();
        for source in &sources {
            match parse_manifests(&source.text, &source.name) {
                Ok(found) => objects.extend(found),
                Err(err) => errors.push(err),
            }
        }
        if !errors.is_empty() {
            return Err(CliError::Manifests { errors });
        }
        if objects.is_empty() {
            return Err(CliError::NoObjects {
                sources: self
                    .paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(objects)
    }
}

fn read(path: &Path, recursive: bool, sources: &mut Vec<Source>) -> Result<(), CliError> {
    let failed = |source| CliError::Read {
        path: path.to_path_buf(),
        source,
    };
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(failed)?;
        sources.push(Source {
            name: "-".to_string(),
            text,
        });
        return Ok(());
    }
    if path.is_dir() {
        let mut entries = std::fs::read_dir(path)
            .map_err(failed)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        entries.sort();
        for entry in entries {
            if entry.is_dir() {
                if recursive {
                    read(&entry, recursive, sources)?;
                }
            } else if is_manifest(&entry) {
                read(&entry, recursive, sources)?;
            }
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(failed)?;
    sources.push(Source {
        name: path.display().to_string(),
        text,
    });
    Ok(())
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: NAME}\n";

    #[test]
    fn a_directory_gives_its_manifest_files_in_name_order_and_skips_others() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.yaml", &NS.replace("NAME", "b"));
        write(
            dir.path(),
            "a.json",
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}"#,
        );
        write(dir.path(), "c.yml", &NS.replace("NAME", "c"));
        write(dir.path(), "notes.txt", "not a manifest");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        write(&dir.path().join("sub"), "d.yaml", &NS.replace("NAME", "d"));
        let sources = Sources {
            paths: vec![dir.path().to_path_buf()],
            recursive: false,
        };
        let names: Vec<String> = sources
            .load()
            .unwrap()
            .iter()
            .map(|o| o.object_ref().name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        let recursive = Sources {
            recursive: true,
            ..sources
        };
        assert_eq!(recursive.load().unwrap().len(), 4);
    }

    #[test]
    fn problems_of_every_file_are_reported_together() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", &NS.replace("NAME", "A"));
        write(dir.path(), "b.yaml", &NS.replace("NAME", "b"));
        write(
            dir.path(),
            "c.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: c, labelz: {}}\n",
        );
        let sources = Sources {
            paths: vec![dir.path().to_path_buf()],
            recursive: false,
        };
        let Err(CliError::Manifests { errors }) = sources.load() else {
            panic!("refused")
        };
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn sources_without_objects_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "empty.yaml", "# nothing\n");
        let sources = Sources {
            paths: vec![dir.path().to_path_buf()],
            recursive: false,
        };
        assert!(matches!(sources.load(), Err(CliError::NoObjects { .. })));
    }
}
