//! A process's resident memory, from `/proc/<pid>/status`.

use anyhow::{Context, bail};

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    match status.lines().find_map(|l| l.strip_prefix("VmRSS:")) {
        Some(value) => value
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("{path}: VmRSS {value:?} is not a number of kB")),
        None => bail!("{path} has no VmRSS line"),
    }
}
