//! The scenario table: YAML files of scenarios, each with the manifests to apply and a
//! probe matrix written one probe per line (`FROM TO WHAT EXPECT [v4|v6]`).

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// One scenario: policies applied with `membrane apply -f`, then every probe must end as
/// expected; after `membrane delete -f` every probe must connect again.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique name, printed in the report.
    pub name: String,
    /// What the scenario proves, for the reader of the table.
    #[serde(default)]
    pub about: String,
    /// Set when the scenario fails because of a known implementation gap: its mismatches
    /// are printed loudly but do not fail the test.
    #[serde(default)]
    pub known_failure: Option<String>,
    /// The manifests, with `${...}` placeholders for addresses (see `bed::Bed::expand`).
    pub policies: String,
    /// The probe matrix.
    pub probes: Vec<ProbeLine>,
    /// `membrane policy trace` checks, made once the probes match.
    #[serde(default)]
    pub traces: Vec<TraceLine>,
    /// TCP connections opened before the policies are applied, which must go on.
    #[serde(default)]
    pub streams: Vec<StreamLine>,
    /// Flows a node's observer must have reported while the policies were applied.
    #[serde(default)]
    pub flows: Vec<FlowLine>,
}

/// A flow check as written: `NODE FROM TO VERDICT` - node NODE's observer (`membrane
/// observe`) reported at least one IPv4 flow from peer FROM to peer TO with the Hubble
/// verdict (FORWARDED, DROPPED or AUDIT) since the scenario's policies were applied.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "String")]
pub struct FlowLine {
    /// The observing node (`node<N>`).
    pub node: String,
    /// Source peer.
    pub from: String,
    /// Destination peer.
    pub to: String,
    /// The verdict.
    pub verdict: String,
}

impl TryFrom<String> for FlowLine {
    type Error = String;

    fn try_from(line: String) -> Result<FlowLine, String> {
        let [node, from, to, verdict] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            return Err(format!(
                "flow `{line}`: expected `NODE FROM TO FORWARDED|DROPPED|AUDIT`"
            ));
        };
        if !["FORWARDED", "DROPPED", "AUDIT"].contains(&verdict) {
            return Err(format!(
                "flow `{line}`: `{verdict}` is not FORWARDED, DROPPED or AUDIT"
            ));
        }
        Ok(FlowLine {
            node: node.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            verdict: verdict.to_string(),
        })
    }
}

impl fmt::Display for FlowLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} saw {} -> {} {}",
            self.node, self.from, self.to, self.verdict
        )
    }
}

/// A long-lived connection as written: `FROM TO tcp/PORT survives [v4|v6]` - opened
/// before the policies are applied, it must go on unbroken while they are enforced (a
/// policy decides when conntrack creates an entry, as in Cilium).
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub struct StreamLine {
    /// The connections it stands for (one per family).
    pub streams: Vec<Stream>,
}

/// One long-lived TCP connection of one family.
#[derive(Clone, Debug)]
pub struct Stream {
    /// Client peer name.
    pub from: String,
    /// Server peer name.
    pub to: String,
    /// TCP port.
    pub port: u16,
    /// The family.
    pub family: Family,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream {} -> {} tcp/{} {}",
            self.from, self.to, self.port, self.family
        )
    }
}

impl TryFrom<String> for StreamLine {
    type Error = String;

    fn try_from(line: String) -> Result<StreamLine, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (from, to, what, families) = match words.as_slice() {
            [from, to, what, "survives"] => (from, to, what, vec![Family::V4, Family::V6]),
            [from, to, what, "survives", "v4"] => (from, to, what, vec![Family::V4]),
            [from, to, what, "survives", "v6"] => (from, to, what, vec![Family::V6]),
            _ => {
                return Err(format!(
                    "stream `{line}`: expected `FROM TO tcp/PORT survives [v4|v6]`"
                ));
            }
        };
        let What::Tcp(port) = parse_what(what).map_err(|e| format!("stream `{line}`: {e}"))? else {
            return Err(format!("stream `{line}`: streams are TCP"));
        };
        let streams = families
            .into_iter()
            .map(|family| Stream {
                from: from.to_string(),
                to: to.to_string(),
                port,
                family,
            })
            .collect();
        Ok(StreamLine { streams })
    }
}

/// A trace check as written: `FROM TO PORT/PROTO VERDICT [POLICY]` - the verdict
/// `membrane policy trace` must print (allowed, denied, audit) and, when given, the name
/// of a policy one of the deciding rules must come from.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "String")]
pub struct TraceLine {
    /// Sender peer name.
    pub from: String,
    /// Receiver peer name.
    pub to: String,
    /// `PORT/PROTO` as the command takes it.
    pub port: String,
    /// The expected verdict.
    pub verdict: String,
    /// A policy name a deciding rule must mention.
    pub policy: Option<String>,
}

impl TryFrom<String> for TraceLine {
    type Error = String;

    fn try_from(line: String) -> Result<TraceLine, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (from, to, port, verdict, policy) = match words.as_slice() {
            [from, to, port, verdict] => (from, to, port, verdict, None),
            [from, to, port, verdict, policy] => (from, to, port, verdict, Some(policy)),
            _ => {
                return Err(format!(
                    "trace `{line}`: expected `FROM TO PORT/PROTO allowed|denied|audit [POLICY]`"
                ));
            }
        };
        if !["allowed", "denied", "audit"].contains(verdict) {
            return Err(format!(
                "trace `{line}`: `{verdict}` is not allowed, denied or audit"
            ));
        }
        Ok(TraceLine {
            from: from.to_string(),
            to: to.to_string(),
            port: port.to_string(),
            verdict: verdict.to_string(),
            policy: policy.map(|p| p.to_string()),
        })
    }
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace {} -> {} {}", self.from, self.to, self.port)
    }
}

/// A probe line as written: `shop/client shop/web tcp/7000 refused v6`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub struct ProbeLine {
    /// The probes it stands for (one per family).
    pub probes: Vec<Probe>,
}

/// The address family a probe uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// What a probe does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// A TCP connection exchanging one echoed line.
    Tcp(u16),
    /// A UDP datagram and its echo.
    Udp(u16),
    /// An HTTP GET.
    Http(u16),
    /// An ICMP (v6) echo request and its reply.
    Icmp,
}

/// The expected (or seen) result of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every exchange was answered.
    Connected,
    /// Nothing was answered.
    Refused,
}

/// One probe of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Peer name of the client: `namespace/pod`, `world`, `node1`, `node2`.
    pub from: String,
    /// Peer name of the server.
    pub to: String,
    /// Protocol and port.
    pub what: What,
    /// The family.
    pub family: Family,
    /// The expected result.
    pub expect: Expect,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        })
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Tcp(port) => write!(f, "tcp/{port}"),
            What::Udp(port) => write!(f, "udp/{port}"),
            What::Http(port) => write!(f, "http/{port}"),
            What::Icmp => f.write_str("icmp"),
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expect::Connected => "connected",
            Expect::Refused => "refused",
        })
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} {} {}",
            self.from, self.to, self.what, self.family
        )
    }
}

fn parse_what(text: &str) -> Result<What, String> {
    if text == "icmp" {
        return Ok(What::Icmp);
    }
    let (proto, port) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}`: expected tcp/PORT, udp/PORT, http/PORT or icmp"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{text}`: `{port}` is not a port number"))?;
    match proto {
        "tcp" => Ok(What::Tcp(port)),
        "udp" => Ok(What::Udp(port)),
        "http" => Ok(What::Http(port)),
        other => Err(format!("`{text}`: unknown protocol `{other}`")),
    }
}

impl TryFrom<String> for ProbeLine {
    type Error = String;

    fn try_from(line: String) -> Result<ProbeLine, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (from, to, what, expect, families) = match words.as_slice() {
            [from, to, what, expect] => (from, to, what, expect, vec![Family::V4, Family::V6]),
            [from, to, what, expect, "v4"] => (from, to, what, expect, vec![Family::V4]),
            [from, to, what, expect, "v6"] => (from, to, what, expect, vec![Family::V6]),
            _ => {
                return Err(format!(
                    "probe `{line}`: expected `FROM TO tcp/PORT|udp/PORT|http/PORT|icmp connected|refused [v4|v6]`"
                ));
            }
        };
        let what = parse_what(what).map_err(|e| format!("probe `{line}`: {e}"))?;
        let expect = match *expect {
            "connected" => Expect::Connected,
            "refused" => Expect::Refused,
            other => {
                return Err(format!(
                    "probe `{line}`: `{other}` is neither connected nor refused"
                ));
            }
        };
        let probes = families
            .into_iter()
            .map(|family| Probe {
                from: from.to_string(),
                to: to.to_string(),
                what,
                family,
                expect,
            })
            .collect();
        Ok(ProbeLine { probes })
    }
}

impl Scenario {
    /// Every long-lived connection, lines expanded per family.
    pub fn streams(&self) -> Vec<Stream> {
        self.streams
            .iter()
            .flat_map(|line| line.streams.iter().cloned())
            .collect()
    }

    /// Every probe of the matrix, lines expanded per family.
    pub fn probes(&self) -> Vec<Probe> {
        self.probes
            .iter()
            .flat_map(|line| line.probes.iter().cloned())
            .collect()
    }
}

/// Loads every `*.yaml` file of `dir` (sorted by name), each a list of scenarios, and
/// checks that names are unique.
pub fn load_dir(dir: &Path) -> Vec<Scenario> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the scenario directory {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let mut scenarios = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let found: Vec<Scenario> = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("scenario file {}: {e}", file.display()));
        scenarios.extend(found);
    }
    let mut names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        panic!("scenario name {} is used twice", pair[0]);
    }
    scenarios
}

#[test]
fn a_probe_line_without_family_stands_for_both_families() {
    let line = ProbeLine::try_from("shop/a lab/b udp/7001 refused".to_string()).unwrap();
    assert_eq!(line.probes.len(), 2);
    assert_eq!(line.probes[1].family, Family::V6);
    assert_eq!(line.probes[0].what, What::Udp(7001));
    assert_eq!(line.probes[0].expect, Expect::Refused);
}

#[test]
fn a_trace_line_names_an_optional_policy() {
    let line = TraceLine::try_from("shop/a shop/b 80/TCP denied deny-all".to_string()).unwrap();
    assert_eq!(line.policy.as_deref(), Some("deny-all"));
    let error = TraceLine::try_from("shop/a shop/b 80/TCP maybe".to_string()).unwrap_err();
    assert!(error.contains("maybe"), "{error}");
}

#[test]
fn a_flow_line_takes_a_hubble_verdict() {
    let line = FlowLine::try_from("node3 shop/a audit/b AUDIT".to_string()).unwrap();
    assert_eq!(
        (line.node.as_str(), line.verdict.as_str()),
        ("node3", "AUDIT")
    );
    let error = FlowLine::try_from("node3 shop/a audit/b DENIED".to_string()).unwrap_err();
    assert!(error.contains("DENIED"), "{error}");
}

#[test]
fn a_bad_probe_line_is_named_in_the_error() {
    let error = ProbeLine::try_from("shop/a lab/b sctp/1 refused".to_string()).unwrap_err();
    assert!(error.contains("sctp/1"), "{error}");
    let error = ProbeLine::try_from("shop/a lab/b icmp maybe".to_string()).unwrap_err();
    assert!(error.contains("maybe"), "{error}");
}
