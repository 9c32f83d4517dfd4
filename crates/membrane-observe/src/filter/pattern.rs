//! Hubble's FQDN and node-name patterns: lower-case names where `*` matches any run of
//! letters, digits, dots and dashes; a node-name pattern may name a cluster before a
//! slash (`prod/k8s*`, `prod/`), and a node name without a cluster is in `default`.

/// Characters a `*` may stand for.
fn wildcard_char(c: char) -> bool {
    c == '-' || c == '.' || c.is_ascii_digit() || c.is_ascii_lowercase()
}

/// Characters a pattern may contain besides `*`.
fn literal_char(c: char) -> bool {
    c == '-' || c == '.' || c == '_' || c.is_ascii_digit() || c.is_ascii_lowercase()
}

/// One FQDN pattern (`*.example.com`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FqdnPattern(String);

impl FqdnPattern {
    /// Parses a pattern: trimmed, one trailing dot removed, lower-cased.
    pub fn parse(pattern: &str) -> Result<FqdnPattern, String> {
        let canonical = pattern.trim();
        let canonical = canonical.strip_suffix('.').unwrap_or(canonical);
        let canonical = canonical.to_ascii_lowercase();
        if canonical.is_empty() {
            return Err("empty pattern".to_string());
        }
        if canonical.ends_with('.') {
            return Err("multiple trailing dots in pattern".to_string());
        }
        if let Some(bad) = canonical.chars().find(|c| *c != '*' && !literal_char(*c)) {
            return Err(format!("{bad:?}: invalid character in pattern"));
        }
        Ok(FqdnPattern(canonical))
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of wildcard chars.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            let mut i = 0;
            loop {
                if glob(rest, &text[i..]) {
                    return true;
                }
                match text.get(i) {
                    Some(c) if wildcard_char(*c as char) => i += 1,
                    _ => return false,
                }
            }
        }
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// One node-name pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNamePattern {
    cluster: Option<FqdnPattern>,
    node: Option<FqdnPattern>,
}

impl NodeNamePattern {
    /// Parses `node`, `cluster/node`, `cluster/` or `/node`.
    pub fn parse(pattern: &str) -> Result<NodeNamePattern, String> {
        if pattern.is_empty() {
            return Err("empty pattern".to_string());
        }
        let parts: Vec<&str> = pattern.split('/').collect();
        let (cluster, node) = match parts.as_slice() {
            [node] => ("", *node),
            [cluster, node] => (*cluster, *node),
            _ => return Err("too many slashes in pattern".to_string()),
        };
        let element = |p: &str| (!p.is_empty()).then(|| FqdnPattern::parse(p)).transpose();
        Ok(NodeNamePattern {
            cluster: element(cluster)?,
            node: element(node)?,
        })
    }

    /// Whether the node `name` (`node1` or `cluster/node1`) matches.
    pub fn matches(&self, name: &str) -> bool {
        if name.is_empty() {
            return false;
        }
        let (cluster, node) = name.split_once('/').unwrap_or(("default", name));
        let element = |pattern: &Option<FqdnPattern>, value: &str| match pattern {
            Some(pattern) => pattern.matches(value),
            None => !value.is_empty() && value.chars().all(literal_char),
        };
        element(&self.cluster, cluster) && element(&self.node, node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_star_matches_runs_of_name_characters_only() {
        let p = FqdnPattern::parse("*.Example.com.").unwrap();
        assert!(p.matches("www.example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("www.example.org"));
        assert!(FqdnPattern::parse("a..").is_err());
        assert!(FqdnPattern::parse("").is_err());
        assert!(FqdnPattern::parse("a b").is_err());
    }

    #[test]
    fn node_names_without_cluster_are_in_the_default_cluster() {
        let any_cluster = NodeNamePattern::parse("k8s*").unwrap();
        assert!(any_cluster.matches("k8s1"));
        assert!(any_cluster.matches("prod/k8s2"));
        assert!(!any_cluster.matches("node1"));
        let default_only = NodeNamePattern::parse("default/").unwrap();
        assert!(default_only.matches("node1"));
        assert!(!default_only.matches("prod/node1"));
        let prod = NodeNamePattern::parse("prod/").unwrap();
        assert!(prod.matches("prod/node1"));
        assert!(!prod.matches("node1"));
        assert!(NodeNamePattern::parse("a/b/c").is_err());
        assert!(!any_cluster.matches(""));
    }
}
