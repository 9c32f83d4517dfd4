//! Runs scenarios on the bed: apply the policies with the CLI, run the probe matrix
//! until it matches (bounded), delete the policies, run the matrix until everything
//! connects again (bounded), and record what was expected and what happened.

use crate::bed::Bed;
use crate::probe::{self, Seen};
use crate::scenario::{Expect, FlowLine, Probe, Scenario, TraceLine};
use crate::stream::{self, StreamResult};
use membrane_api::policy::TraceReport;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How long the agents get to enforce (or stop enforcing) what was applied (or deleted).
const CONVERGE: Duration = Duration::from_secs(15);
/// Pause between two runs of a matrix that did not match yet.
const RETRY_PAUSE: Duration = Duration::from_millis(300);
/// How long a node gets to report an expected flow.
const FLOW_WAIT: Duration = Duration::from_secs(5);
/// Probes run at the same time (most of a refused probe's time is waiting).
const PARALLEL: usize = 8;

/// One probe's expectation and outcome in one phase.
pub struct ProbeResult {
    /// The probe, with its expectation.
    pub probe: Probe,
    /// What it did the last time it ran.
    pub seen: Seen,
}

impl ProbeResult {
    fn matched(&self) -> bool {
        self.seen.result == Some(self.probe.expect)
    }
}

/// One `membrane policy trace` check and what the command said.
pub struct TraceResult {
    /// The expectation.
    pub line: TraceLine,
    /// The verdict and deciding rules, or why the command failed.
    pub said: Result<String, String>,
    /// Whether it matched.
    pub matched: bool,
}

impl TraceResult {
    fn check(bed: &Bed<'_>, line: &TraceLine) -> TraceResult {
        let report = bed.trace(line);
        let matched = report.as_ref().is_ok_and(|report| {
            report.verdict == line.verdict
                && line.policy.as_ref().is_none_or(|policy| {
                    deciding_rules(report).any(|rule| rule.contains(policy.as_str()))
                })
        });
        let said = report.map(|report| {
            let rules: Vec<&str> = deciding_rules(&report).collect();
            format!("{} by {rules:?}", report.verdict)
        });
        TraceResult {
            line: line.clone(),
            said,
            matched,
        }
    }

    fn expected(&self) -> String {
        match &self.line.policy {
            Some(policy) => format!("{} by {policy}", self.line.verdict),
            None => self.line.verdict.clone(),
        }
    }

    fn said(&self) -> &str {
        match &self.said {
            Ok(text) | Err(text) => text,
        }
    }
}

/// The rules of both sides' decisions.
fn deciding_rules(report: &TraceReport) -> impl Iterator<Item = &str> {
    [&report.egress, &report.ingress]
        .into_iter()
        .flatten()
        .flat_map(|decision| decision.rules.iter().map(|rule| rule.rule.as_str()))
}

/// One flow check and how many matching flows the node reported.
pub struct FlowResult {
    /// The expectation.
    pub line: FlowLine,
    /// The number of matching flows, or why the command failed.
    pub seen: Result<usize, String>,
}

impl FlowResult {
    /// Asks the node for flows since `applied_at` until it reports some or
    /// [`FLOW_WAIT`] has passed (the observer reads the datapath's ring asynchronously).
    fn wait(bed: &Bed<'_>, line: &FlowLine, applied_at: Instant) -> FlowResult {
        let deadline = Instant::now() + FLOW_WAIT;
        loop {
            let result = FlowResult {
                line: line.clone(),
                seen: bed.flows(line, applied_at.elapsed()),
            };
            if result.matched() || Instant::now() >= deadline {
                return result;
            }
            std::thread::sleep(RETRY_PAUSE);
        }
    }

    fn matched(&self) -> bool {
        self.seen.as_ref().is_ok_and(|n| *n > 0)
    }

    fn detail(&self) -> String {
        match &self.seen {
            Ok(n) => format!("{n} flows"),
            Err(e) => e.clone(),
        }
    }
}

/// The outcome of one scenario.
pub struct ScenarioResult<'s> {
    /// The scenario.
    pub scenario: &'s Scenario,
    /// What went wrong outside the probes (apply or delete failed).
    pub errors: Vec<String>,
    /// The matrix with the policies applied.
    pub applied: Vec<ProbeResult>,
    /// The trace checks, with the policies applied.
    pub traces: Vec<TraceResult>,
    /// The connections opened before the policies were applied.
    pub streams: Vec<StreamResult>,
    /// The flow checks.
    pub flows: Vec<FlowResult>,
    /// The matrix after the policies were deleted (every probe expected to connect).
    pub removed: Vec<ProbeResult>,
    /// Time the scenario took.
    pub elapsed: Duration,
}

impl ScenarioResult<'_> {
    /// True when every probe of both phases matched and nothing else failed.
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
            && self.applied.iter().all(ProbeResult::matched)
            && self.traces.iter().all(|t| t.matched)
            && self.streams.iter().all(StreamResult::survived)
            && self.flows.iter().all(FlowResult::matched)
            && self.restored()
    }

    /// True when every probe connected again once the policies were deleted: the bed is
    /// as the next scenario expects it.
    pub fn restored(&self) -> bool {
        self.removed.iter().all(ProbeResult::matched)
    }

    /// The scenario's block of the printout: every probe with expectation and outcome.
    pub fn render(&self) -> String {
        let status = match (self.passed(), &self.scenario.known_failure) {
            (true, None) => "PASS".to_string(),
            (true, Some(_)) => "PASS (marked known_failure: remove the mark)".to_string(),
            (false, None) => "FAIL".to_string(),
            (false, Some(reason)) => format!("KNOWN FAILURE ({reason})"),
        };
        let mut out = format!(
            "=== {} [{status}] in {:.1?}\n    {}\n",
            self.scenario.name,
            self.elapsed,
            self.scenario.about.trim()
        );
        for error in &self.errors {
            writeln!(out, "    ERROR {error}").unwrap();
        }
        for stream in &self.streams {
            writeln!(
                out,
                "    {} {:56} expected unbroken ({})",
                if stream.survived() { "ok  " } else { "MISS" },
                stream.stream.to_string(),
                stream.detail()
            )
            .unwrap();
        }
        for flow in &self.flows {
            writeln!(
                out,
                "    {} {:56} expected some flows, got {}",
                if flow.matched() { "ok  " } else { "MISS" },
                flow.line.to_string(),
                flow.detail()
            )
            .unwrap();
        }
        for trace in &self.traces {
            writeln!(
                out,
                "    {} {:56} expected {} got {}",
                if trace.matched { "ok  " } else { "MISS" },
                trace.line.to_string(),
                trace.expected(),
                trace.said()
            )
            .unwrap();
        }
        for (phase, results) in [("applied", &self.applied), ("removed", &self.removed)] {
            for result in results {
                let seen = match result.seen.result {
                    Some(outcome) => outcome.to_string(),
                    None => "not run".to_string(),
                };
                writeln!(
                    out,
                    "    {} {phase:7} {:48} expected {:9} got {seen:9} ({})",
                    if result.matched() { "ok  " } else { "MISS" },
                    result.probe.to_string(),
                    result.probe.expect.to_string(),
                    result.seen.detail
                )
                .unwrap();
            }
        }
        out
    }

    /// One line per mismatching probe, for the summary.
    pub fn mismatches(&self) -> Vec<String> {
        let mut lines = self.errors.clone();
        for stream in self.streams.iter().filter(|s| !s.survived()) {
            lines.push(format!("{} broke: {}", stream.stream, stream.detail()));
        }
        for flow in self.flows.iter().filter(|f| !f.matched()) {
            lines.push(format!(
                "{} expected some flows, got {}",
                flow.line,
                flow.detail()
            ));
        }
        for trace in self.traces.iter().filter(|t| !t.matched) {
            lines.push(format!(
                "{} expected {}, got {}",
                trace.line,
                trace.expected(),
                trace.said()
            ));
        }
        for (phase, results) in [("applied", &self.applied), ("removed", &self.removed)] {
            for result in results.iter().filter(|r| !r.matched()) {
                lines.push(format!(
                    "{phase}: {} expected {}, got {}",
                    result.probe,
                    result.probe.expect,
                    result
                        .seen
                        .result
                        .map_or_else(|| result.seen.detail.clone(), |r| r.to_string())
                ));
            }
        }
        lines
    }
}

/// Runs `probes` (in parallel batches) once.
fn run_matrix(bed: &Bed<'_>, probes: &[Probe]) -> Vec<ProbeResult> {
    let mut results = Vec::with_capacity(probes.len());
    for batch in probes.chunks(PARALLEL) {
        let seen: Vec<Seen> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|probe| scope.spawn(move || probe::run(bed, probe)))
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("a probe thread panicked"))
                .collect()
        });
        results.extend(
            batch
                .iter()
                .cloned()
                .zip(seen)
                .map(|(probe, seen)| ProbeResult { probe, seen }),
        );
    }
    results
}

/// Runs the matrix until every probe matches or [`CONVERGE`] has passed; the last run.
fn converge(bed: &Bed<'_>, probes: &[Probe]) -> Vec<ProbeResult> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let results = run_matrix(bed, probes);
        if results.iter().all(ProbeResult::matched) || Instant::now() >= deadline {
            return results;
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// Runs one scenario.
pub fn run<'s>(bed: &Bed<'_>, scenario: &'s Scenario) -> ScenarioResult<'s> {
    let started = Instant::now();
    let mut result = ScenarioResult {
        scenario,
        errors: Vec::new(),
        applied: Vec::new(),
        traces: Vec::new(),
        streams: Vec::new(),
        flows: Vec::new(),
        removed: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let manifest = match bed.expand(&scenario.policies) {
        Ok(text) => bed.write_manifest(&scenario.name, &text),
        Err(e) => {
            result.errors.push(format!("policies: {e}"));
            return result;
        }
    };
    let streams = stream::start(bed, scenario.streams());
    let applied_at = Instant::now();
    if let Err(e) = bed.membrane(&["apply", "-f"], &manifest) {
        result.errors.push(format!("membrane apply failed: {e}"));
        return result;
    }
    let probes = scenario.probes();
    result.applied = converge(bed, &probes);
    result.streams = stream::finish(streams);
    result.flows = scenario
        .flows
        .iter()
        .map(|line| FlowResult::wait(bed, line, applied_at))
        .collect();
    result.traces = scenario
        .traces
        .iter()
        .map(|line| TraceResult::check(bed, line))
        .collect();
    if let Err(e) = bed.membrane(&["delete", "-f"], &manifest) {
        result.errors.push(format!("membrane delete failed: {e}"));
    }
    let restored: Vec<Probe> = probes
        .into_iter()
        .map(|probe| Probe {
            expect: Expect::Connected,
            ..probe
        })
        .collect();
    result.removed = converge(bed, &restored);
    result.elapsed = started.elapsed();
    result
}
