//! Running the real programs on crafted packets with `BPF_PROG_TEST_RUN`, for unit
//! tests and per-packet cost benchmarks.

use crate::error::DatapathError;
use crate::loader::Datapath;
use aya::programs::{Program, ProgramError, TestRun, TestRunOptions};
use std::time::Duration;

/// Size of the kernel's `struct __sk_buff`, the context of tc programs.
const SK_BUFF_SIZE: usize = 192;
/// Offset of `ifindex` in `struct __sk_buff`.
const SK_BUFF_IFINDEX: usize = 40;
/// Size of the kernel's `struct xdp_md`, the context of XDP programs.
const XDP_MD_SIZE: usize = 24;
/// Offset of `data_end` in `struct xdp_md` (`data` is 0: the frame starts at once).
const XDP_MD_DATA_END: usize = 4;
/// Offset of `ingress_ifindex` in `struct xdp_md`.
const XDP_MD_INGRESS_IFINDEX: usize = 12;

/// What one test run returned.
#[derive(Clone, Debug)]
pub struct TestRunOutcome {
    /// The program's return value: a tc action (0 ok, 2 shot, 7 redirect) or an XDP
    /// action (1 drop, 2 pass, 3 tx, 4 redirect).
    pub action: i32,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
    /// Average kernel time per run.
    pub duration: Duration,
}

/// A context of `size` bytes with `ifindex` at `offset`.
fn context(size: usize, offset: usize, ifindex: u32) -> Vec<u8> {
    let mut ctx = vec![0u8; size];
    ctx[offset..offset + 4].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}

/// One test run's options: `packet` in, room for it out, `ctx` as the context.
fn options<'a>(
    packet: &'a [u8],
    ctx: &'a [u8],
    out: &'a mut [u8],
    repeat: u32,
) -> TestRunOptions<'a> {
    TestRunOptions {
        data_in: Some(packet),
        data_out: Some(out),
        ctx_in: Some(ctx),
        repeat: repeat.max(1),
        ..Default::default()
    }
}

impl Datapath {
    /// Runs `program` (a tc or XDP program) `repeat` times on `packet`, as if received
    /// on interface `ifindex` (which must exist in the caller's network namespace, and
    /// be > 1).
    pub fn test_run(
        &self,
        program: &'static str,
        packet: &[u8],
        ifindex: u32,
        repeat: u32,
    ) -> Result<TestRunOutcome, DatapathError> {
        let mut out = vec![0u8; packet.len() + 256];
        let result = match self.ebpf().program(program) {
            Some(Program::SchedClassifier(tc)) => {
                let ctx = context(SK_BUFF_SIZE, SK_BUFF_IFINDEX, ifindex);
                tc.test_run(options(packet, &ctx, &mut out, repeat))
            }
            Some(Program::Xdp(xdp)) => {
                let mut ctx = context(XDP_MD_SIZE, XDP_MD_INGRESS_IFINDEX, ifindex);
                let end = u32::try_from(packet.len()).unwrap_or(u32::MAX);
                ctx[XDP_MD_DATA_END..XDP_MD_DATA_END + 4].copy_from_slice(&end.to_ne_bytes());
                xdp.test_run(options(packet, &ctx, &mut out, repeat))
            }
            _ => {
                return Err(DatapathError::Missing {
                    kind: "program",
                    name: program,
                });
            }
        }
        .map_err(|source: ProgramError| DatapathError::Program { program, source })?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutcome {
            action: result.return_value as i32,
            packet: out,
            duration: result.duration,
        })
    }
}
