//! Kubernetes label selectors in their text form (`app=web,tier in (a,b),!canary`),
//! matched against flow labels written `source:key=value`. A selector key may name a
//! source (`k8s:app`); without one (or with `any:`) it matches labels of every source.

/// One parsed selector: all requirements must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    source: Option<String>,
    name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Exists(Key),
    NotExists(Key),
    Equals(Key, String),
    NotEquals(Key, String),
    In(Key, Vec<String>),
    NotIn(Key, Vec<String>),
}

/// A flow label split into its parts.
struct Label<'a> {
    source: &'a str,
    key: &'a str,
    value: &'a str,
}

fn split_label(label: &str) -> Label<'_> {
    let (source, rest) = label.split_once(':').unwrap_or(("unspec", label));
    let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
    Label { source, key, value }
}

fn parse_key(text: &str) -> Result<Key, String> {
    let text = text.trim();
    let (source, name) = match text.split_once(':') {
        Some((source, name)) => (Some(source.to_string()), name),
        None => (None, text),
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    if name.is_empty() || !name.chars().all(valid) {
        return Err(format!("invalid label key {text:?}"));
    }
    let source = source.filter(|s| s != "any");
    Ok(Key {
        source,
        name: name.to_string(),
    })
}

fn parse_value(text: &str) -> Result<String, String> {
    let text = text.trim();
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !text.chars().all(valid) {
        return Err(format!("invalid label value {text:?}"));
    }
    Ok(text.to_string())
}

/// Splits on commas outside parentheses.
fn split_requirements(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected (values) in {text:?}"))?;
    inner.split(',').map(parse_value).collect()
}

fn parse_requirement(text: &str) -> Result<Requirement, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty requirement".to_string());
    }
    if let Some(key) = text.strip_prefix('!') {
        return Ok(Requirement::NotExists(parse_key(key)?));
    }
    if let Some((key, value)) = text.split_once("!=") {
        return Ok(Requirement::NotEquals(parse_key(key)?, parse_value(value)?));
    }
    if let Some((key, value)) = text.split_once("==").or_else(|| text.split_once('=')) {
        return Ok(Requirement::Equals(parse_key(key)?, parse_value(value)?));
    }
    if let Some((key, set)) = text.split_once(" notin ") {
        return Ok(Requirement::NotIn(parse_key(key)?, parse_set(set)?));
    }
    if let Some((key, set)) = text.split_once(" in ") {
        return Ok(Requirement::In(parse_key(key)?, parse_set(set)?));
    }
    Ok(Requirement::Exists(parse_key(text)?))
}

impl Selector {
    /// Parses a selector.
    pub fn parse(text: &str) -> Result<Selector, String> {
        split_requirements(text)
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<Vec<_>, _>>()
            .map(Selector)
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &[String]) -> bool {
        let values = |key: &Key| -> Vec<String> {
            labels
                .iter()
                .map(|l| split_label(l))
                .filter(|l| {
                    l.key == key.name && key.source.as_deref().is_none_or(|s| s == l.source)
                })
                .map(|l| l.value.to_string())
                .collect()
        };
        self.0.iter().all(|requirement| match requirement {
            Requirement::Exists(key) => !values(key).is_empty(),
            Requirement::NotExists(key) => values(key).is_empty(),
            Requirement::Equals(key, value) => values(key).iter().any(|v| v == value),
            Requirement::NotEquals(key, value) => values(key).iter().all(|v| v != value),
            Requirement::In(key, set) => values(key).iter().any(|v| set.contains(v)),
            Requirement::NotIn(key, set) => values(key).iter().all(|v| !set.contains(v)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["k8s:app=web", "k8s:tier=front", "reserved:host"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn selector_forms_match_as_kubernetes_defines_them() {
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app in (db, web)", true),
            ("app notin (db, web)", false),
            ("missing notin (x)", true),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("k8s:app=web", true),
            ("any:app=web", true),
            ("reserved:app=web", false),
            ("reserved:host", true),
        ];
        for (selector, expected) in cases {
            let parsed = Selector::parse(selector).unwrap();
            assert_eq!(parsed.matches(&labels()), expected, "{selector}");
        }
    }

    #[test]
    fn malformed_selectors_are_refused() {
        for bad in ["", "=web", "app in web", "a b=c", "app=we b", "app,"] {
            assert!(Selector::parse(bad).is_err(), "{bad:?}");
        }
        // An empty value is valid in Kubernetes.
        assert!(Selector::parse("app=").is_ok());
    }
}
