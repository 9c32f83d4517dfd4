//! A process's memory, from `/proc/<pid>/status`.

use anyhow::{Context, bail};

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most it has been resident.
    pub peak_kib: u64,
}

impl Memory {
    /// The memory of process `pid` now.
    pub fn of(pid: u32) -> anyhow::Result<Memory> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        Ok(Memory {
            rss_kib: field_kib(&status, "VmRSS", &path)?,
            peak_kib: field_kib(&status, "VmHWM", &path)?,
        })
    }
}

/// The value of `field` (in kB) in the `status` text read from `path`.
fn field_kib(status: &str, field: &str, path: &str) -> anyhow::Result<u64> {
    let prefix = format!("{field}:");
    match status.lines().find_map(|l| l.strip_prefix(&prefix)) {
        Some(value) => value
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("{path}: {field} {value:?} is not a number of kB")),
        None => bail!("{path} has no {field} line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_are_read_in_kib_and_a_missing_one_is_named() {
        let status = "Name:\tagent\nVmHWM:\t   51234 kB\nVmRSS:\t   43684 kB\n";
        assert_eq!(field_kib(status, "VmRSS", "s").unwrap(), 43684);
        assert_eq!(field_kib(status, "VmHWM", "s").unwrap(), 51234);
        let error = field_kib(status, "VmSwap", "s").unwrap_err().to_string();
        assert!(error.contains("VmSwap"), "{error}");
    }
}
