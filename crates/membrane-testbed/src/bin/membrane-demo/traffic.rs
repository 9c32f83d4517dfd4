//! The application's paths, driven with the workload client: each one expected to
//! connect or to be refused by the example's policies.

use membrane_testbed::Place;
use membrane_testbed::report::CountReport;
use membrane_testbed::workload::{self, Outcome, WorkloadError};

/// What a path should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every request answered.
    Connects,
    /// Every request refused by policy.
    Refused,
}

/// One path: from where, to what, how.
pub struct Path<'a> {
    /// What it stands for (`visitor -> frontend`).
    pub name: String,
    /// Where the client runs.
    pub from: &'a (dyn Place + Sync),
    /// `http://...` or `tcp://addr:port`.
    pub target: String,
    /// What should happen.
    pub expect: Expect,
}

/// How one drive of a path went.
pub struct Driven {
    /// Requests answered.
    pub ok: u64,
    /// Requests that failed.
    pub failed: u64,
    /// True when that is what the path should do.
    pub as_expected: bool,
    /// The first error, if any.
    pub first_error: Option<String>,
}

/// Sends `count` requests along `path`.
pub fn drive(path: &Path<'_>, count: u32) -> Result<Driven, WorkloadError> {
    let outcome: Outcome<CountReport> = match path.target.strip_prefix("tcp://") {
        Some(address) => workload::tcp(
            path.from,
            address
                .parse()
                .expect("demo paths hold valid socket addresses"),
            count,
        )?,
        None => workload::http(path.from, &path.target, count)?,
    };
    let report = outcome.report;
    let as_expected = match path.expect {
        Expect::Connects => report.failed == 0 && report.ok > 0,
        Expect::Refused => report.ok == 0,
    };
    Ok(Driven {
        ok: report.ok,
        failed: report.failed,
        as_expected,
        first_error: report.first_error,
    })
}
