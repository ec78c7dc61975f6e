//! BPF_PROG_TEST_RUN: run the loaded programs on crafted packets without attaching them.
//! Used by the program tests and `cargo xtask bench`.

use std::time::Duration;

use aya::{TestRun, programs::TestRunOptions};

use chaos_common::{TC_ACT_NEXT, TC_ACT_REDIRECT, XDP_DROP, XDP_PASS};

use super::{Direction, Error, Injector, attach};

/// `sizeof(struct __sk_buff)` and the offsets of its `priority` and `tstamp` (uapi/linux/bpf.h):
/// the context a TC test run takes and hands back, where the band and departure time a program
/// set can be read.
const SKB_CTX_SIZE: usize = 192;
const SKB_PRIORITY_OFFSET: usize = 32;
const SKB_TSTAMP_OFFSET: usize = 152;

/// What a program decided for a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The packet goes on.
    Pass,
    /// The packet is dropped.
    Drop,
    /// Egress: the packet was rewritten (a DNS query into its answer) and sent back up the
    /// interface.
    Answered,
}

/// Result of a test run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Raw program return value.
    pub return_value: u32,
    /// Decoded verdict.
    pub verdict: Verdict,
    /// Average time per run as measured by the kernel.
    pub per_run: Duration,
    /// Egress: the departure time (CLOCK_MONOTONIC ns) the program stamped on the last run, if any.
    pub departure_ns: Option<u64>,
    /// Egress: the `skb->priority` the program left (which band of the daemon's qdisc tree).
    pub priority: u32,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
}

impl Injector {
    /// Runs the program of `direction` `repeat` times on `packet` (an Ethernet frame, ≥ 14 bytes).
    pub fn test_run(
        &mut self,
        direction: Direction,
        packet: &[u8],
        repeat: u32,
    ) -> Result<Outcome, Error> {
        let ctx_in = [0u8; SKB_CTX_SIZE];
        let mut ctx_out = [0u8; SKB_CTX_SIZE];
        // Room for a program that grows the packet.
        let mut data_out = vec![0u8; packet.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut data_out),
            repeat,
            ..TestRunOptions::new()
        };
        let (result, verdict_of): (_, fn(u32) -> Option<Verdict>) = match direction {
            Direction::Egress => (
                attach::egress(self.ebpf_mut())?.test_run(TestRunOptions {
                    ctx_in: Some(&ctx_in),
                    ctx_out: Some(&mut ctx_out),
                    ..opts
                }),
                // The kernel hands back the i32 return code as a u32.
                |r| match r as i32 {
                    TC_ACT_NEXT => Some(Verdict::Pass),
                    TC_ACT_REDIRECT => Some(Verdict::Drop),
                    _ => None,
                },
            ),
            Direction::Ingress => (
                attach::ingress(self.ebpf_mut())?.test_run(opts),
                |r| match r {
                    XDP_PASS => Some(Verdict::Pass),
                    XDP_DROP => Some(Verdict::Drop),
                    _ => None,
                },
            ),
        };
        let result = result.map_err(|e| Error::Load(Box::new(e)))?;
        let mut verdict = verdict_of(result.return_value).ok_or_else(|| {
            Error::Load(format!("unexpected program return value {}", result.return_value).into())
        })?;
        data_out.truncate(result.data_size_out as usize);
        // Both drops and answers are redirects; only an answer changes the packet.
        if verdict == Verdict::Drop && direction == Direction::Egress && data_out != packet {
            verdict = Verdict::Answered;
        }
        let tstamp = u64::from_ne_bytes(
            ctx_out[SKB_TSTAMP_OFFSET..SKB_TSTAMP_OFFSET + 8]
                .try_into()
                .expect("8 bytes"),
        );
        Ok(Outcome {
            return_value: result.return_value,
            verdict,
            per_run: result.duration,
            departure_ns: (tstamp != 0).then_some(tstamp),
            priority: u32::from_ne_bytes(
                ctx_out[SKB_PRIORITY_OFFSET..SKB_PRIORITY_OFFSET + 4]
                    .try_into()
                    .expect("4 bytes"),
            ),
            packet: data_out,
        })
    }
}
