//! What can be wrong with a manifest, and where.

use crate::validate::Violation;
use std::fmt;

/// Where a document is: its source, its 1-based number among the source's documents
/// (YAML documents, or elements of a JSON array) and, inside a `List`, its item index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The source's name (a path, or `-` for standard input).
    pub source_name: String,
    /// 1-based document number.
    pub document: usize,
    /// 0-based index in the document's `items` when the document is a `List`.
    pub item: Option<usize>,
}

impl fmt::Display for Position {
    /// `web.yaml document 2`, or `web.yaml document 1 items[3]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} document {}", self.source_name, self.document)?;
        if let Some(item) = self.item {
            write!(f, " items[{item}]")?;
        }
        Ok(())
    }
}

/// One thing wrong with one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The document.
    pub position: Position,
    /// The object, as `Kind namespace/name`, once the document's kind is known.
    pub object: Option<String>,
    /// JSON path of the offending field (`spec.ports[0].port`); empty for the whole
    /// document.
    pub field: String,
    /// What is wrong.
    pub violation: Violation,
}

impl fmt::Display for Problem {
    /// `web.yaml document 2: Service default/web: spec.ports[0].port: port 0 is out
    /// of range 1-65535`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.position)?;
        if let Some(object) = &self.object {
            write!(f, ": {object}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.violation)
    }
}

/// Why a set of manifests was refused. Nothing of a refused set may be applied.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML.
    #[error("{source_name} document {document}: not valid YAML: {source}")]
    Yaml {
        /// The source's name.
        source_name: String,
        /// 1-based number of the document where reading stopped.
        document: usize,
        /// The YAML error, with its line and column.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// The text looks like JSON (it starts with `{` or `[`) but is not.
    #[error("{source_name}: not valid JSON: {source}")]
    Json {
        /// The source's name.
        source_name: String,
        /// The JSON error, with its line and column.
        #[source]
        source: serde_json::Error,
    },
    /// Documents were read, and some are wrong: every problem found, one per line.
    #[error("{}", render(problems))]
    Invalid {
        /// Every problem, in document order.
        problems: Vec<Problem>,
    },
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
