//! Running the real programs on crafted packets with `BPF_PROG_TEST_RUN`, for unit
//! tests and per-packet cost benchmarks.

use crate::error::DatapathError;
use crate::loader::Datapath;
use aya::programs::{ProgramError, TestRun, TestRunOptions};
use std::time::Duration;

/// Size of the kernel's `struct __sk_buff`, the context of tc programs.
const SK_BUFF_SIZE: usize = 192;
/// Offset of `ifindex` in `struct __sk_buff`.
const SK_BUFF_IFINDEX: usize = 40;

/// What one test run returned.
#[derive(Clone, Debug)]
pub struct TestRunOutcome {
    /// The program's return value (a tc action: 0 ok, 2 shot, 7 redirect).
    pub action: i32,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
    /// Average kernel time per run.
    pub duration: Duration,
}

impl Datapath {
    /// Runs `program` `repeat` times on `packet`, as if received on interface
    /// `ifindex` (which must exist in the caller's network namespace, and be > 1).
    pub fn test_run(
        &self,
        program: &'static str,
        packet: &[u8],
        ifindex: u32,
        repeat: u32,
    ) -> Result<TestRunOutcome, DatapathError> {
        let program_ref = self
            .ebpf()
            .program(program)
            .and_then(|p| <&aya::programs::SchedClassifier>::try_from(p).ok())
            .ok_or(DatapathError::Missing {
                kind: "program",
                name: program,
            })?;
        let mut ctx = [0u8; SK_BUFF_SIZE];
        ctx[SK_BUFF_IFINDEX..SK_BUFF_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
        let mut out = vec![0u8; packet.len() + 256];
        let result = program_ref
            .test_run(TestRunOptions {
                data_in: Some(packet),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                repeat: repeat.max(1),
                ..Default::default()
            })
            .map_err(|source: ProgramError| DatapathError::Program { program, source })?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutcome {
            action: result.return_value as i32,
            packet: out,
            duration: result.duration,
        })
    }
}
