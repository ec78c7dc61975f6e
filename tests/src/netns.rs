//! Two network namespaces joined by a veth pair, created by the test and deleted on drop (also
//! when the test panics). Nothing here touches the host's own interfaces.
//!
//! Layout (same in every pair; namespaces isolate them, so pairs can run in parallel):
//! ```text
//!   ns "<name>-a"  veth "va"  10.200.0.1/24 10.200.0.4/24  fd00:c4a0::1/64 fd00:c4a0::4/64
//!   ns "<name>-b"  veth "vb"  10.200.0.2/24 10.200.0.3/24  fd00:c4a0::2/64 fd00:c4a0::3/64
//! ```
//! A has a default route via 10.200.0.2, so the daemon's default interface there is `va`.

use std::{
    fs::File,
    process::{Command, Output},
};

use nix::sched::{CloneFlags, setns};

/// Interface name of side A.
pub const VETH_A: &str = "va";
/// Interface name of side B.
pub const VETH_B: &str = "vb";
/// Main and secondary IPv4 addresses of A.
pub const A4: &str = "10.200.0.1";
/// Secondary IPv4 address of A.
pub const A4_ALT: &str = "10.200.0.4";
/// Main IPv4 address of B.
pub const B4: &str = "10.200.0.2";
/// Secondary IPv4 address of B (same /24 as B4).
pub const B4_ALT: &str = "10.200.0.3";
/// Main IPv6 address of A.
pub const A6: &str = "fd00:c4a0::1";
/// Secondary IPv6 address of A.
pub const A6_ALT: &str = "fd00:c4a0::4";
/// Main IPv6 address of B.
pub const B6: &str = "fd00:c4a0::2";
/// Secondary IPv6 address of B.
pub const B6_ALT: &str = "fd00:c4a0::3";

/// A pair of namespaces `a` and `b` joined by `va <-> vb`. Deleted on drop.
pub struct NsPair {
    /// Namespace of side A.
    pub a: String,
    /// Namespace of side B.
    pub b: String,
    queues: u32,
}

/// Runs a command and panics with its output if it fails.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl NsPair {
    /// Creates the pair. `tag` makes the names unique per test; the pid per test process.
    pub fn new(tag: &str) -> NsPair {
        NsPair::with_queues(tag, 1)
    }

    /// As [`NsPair::new`], with `queues` TX and RX queues on each veth end.
    pub fn with_queues(tag: &str, queues: u32) -> NsPair {
        assert!(
            nix::unistd::geteuid().is_root(),
            "network-namespace tests need root (CAP_NET_ADMIN, CAP_BPF): run `cargo xtask test` as root"
        );
        let base = format!("chaos-{tag}-{}", std::process::id());
        let pair = NsPair {
            a: format!("{base}-a"),
            b: format!("{base}-b"),
            queues,
        };
        for ns in [&pair.a, &pair.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            run(&["ip", "netns", "add", ns]);
        }
        pair.link(&[B4, B4_ALT, B6, B6_ALT]);
        pair
    }

    /// Deletes the veth pair and creates it again, same names and addresses (new ifindexes):
    /// an interface that vanishes and returns. Waits until B answers on `reachable` (faults
    /// that follow the interface may keep the others silent).
    pub fn recreate_link(&self, reachable: &[&str]) {
        run(&["ip", "-n", &self.a, "link", "del", VETH_A]);
        self.link(reachable);
    }

    /// Creates `va <-> vb` with the addresses and A's default route, then waits until B answers
    /// on `reachable`.
    fn link(&self, reachable: &[&str]) {
        let (a, b) = (self.a.as_str(), self.b.as_str());
        let q = self.queues.to_string();
        run(&[
            "ip",
            "-n",
            a,
            "link",
            "add",
            VETH_A,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            VETH_B,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            b,
        ]);
        for (ns, dev, addrs) in [
            (a, VETH_A, [A4, A4_ALT, A6, A6_ALT]),
            (b, VETH_B, [B4, B4_ALT, B6, B6_ALT]),
        ] {
            for addr in addrs {
                let cidr = if addr.contains(':') {
                    format!("{addr}/64")
                } else {
                    format!("{addr}/24")
                };
                run(&["ip", "-n", ns, "addr", "add", &cidr, "dev", dev, "nodad"]);
            }
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        // A's default route points at B, so "interface" defaults to va in A.
        run(&["ip", "-n", a, "route", "add", "default", "via", B4]);
        self.wait_until_reachable(reachable);
    }

    /// Waits (≤ 5 s) until A reaches each of `addresses` in B: a fresh veth needs a moment before
    /// IPv6 neighbour discovery answers, and tests must not mistake that for a fault.
    fn wait_until_reachable(&self, addresses: &[&str]) {
        for &dst in addresses {
            let start = std::time::Instant::now();
            while self.ping(&self.a, dst, None, 1, "0.1") != (1, 1) {
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(5),
                    "{dst} unreachable from {} 5 s after setup",
                    self.a
                );
            }
        }
    }

    /// Runs `args` inside namespace `ns` and returns its output (whatever the exit code).
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {ns}: {e}"))
    }

    /// Our programs on `iface` in `ns`, as the kernel reports them: the number of TCX egress
    /// programs, and whether an XDP program is attached.
    pub fn attached(&self, ns: &str, iface: &str) -> (usize, bool) {
        let tcx = in_ns(ns, || {
            aya::programs::SchedClassifier::query_tcx(iface, aya::programs::TcAttachType::Egress)
                .unwrap_or_else(|e| panic!("query TCX on {iface}: {e}"))
                .1
                .len()
        });
        let link = String::from_utf8_lossy(&self.exec(ns, &["ip", "link", "show", iface]).stdout)
            .into_owned();
        (tcx, link.contains("xdp"))
    }

    /// Pings `dst` from namespace `ns` `count` times, `interval` seconds apart, optionally from
    /// source address `src`; returns (transmitted, received).
    pub fn ping(
        &self,
        ns: &str,
        dst: &str,
        src: Option<&str>,
        count: u32,
        interval: &str,
    ) -> (u32, u32) {
        match src {
            Some(src) => self.ping_with(ns, dst, &["-I", src], count, interval),
            None => self.ping_with(ns, dst, &[], count, interval),
        }
    }

    /// As [`NsPair::ping`], with `payload` bytes per echo request (above the MTU: fragments).
    pub fn ping_sized(&self, ns: &str, dst: &str, payload: usize, count: u32) -> (u32, u32) {
        self.ping_with(ns, dst, &["-s", &payload.to_string()], count, "0.05")
    }

    /// (icmp_seq, RTT ms) of each reply, in the order they arrived, over `n` pings from `ns`
    /// to `dst`, `interval` seconds apart; panics if more than a tenth are lost.
    pub fn ping_replies(&self, ns: &str, dst: &str, n: u32, interval: &str) -> Vec<(u32, f64)> {
        let count = n.to_string();
        let out = self.exec(
            ns,
            &["ping", "-n", "-c", &count, "-i", interval, "-W", "2", dst],
        );
        let got: Vec<(u32, f64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let seq = l
                    .split("icmp_seq=")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()?;
                let rtt = l.split("time=").nth(1)?.split(' ').next()?.parse().ok()?;
                Some((seq, rtt))
            })
            .collect();
        assert!(
            got.len() as u32 >= n * 9 / 10,
            "lost pings to {dst}: {got:?}"
        );
        got
    }

    fn ping_with(
        &self,
        ns: &str,
        dst: &str,
        extra: &[&str],
        count: u32,
        interval: &str,
    ) -> (u32, u32) {
        let count = count.to_string();
        let mut args = vec!["ping", "-n", "-q", "-c", &count, "-i", interval, "-W", "1"];
        args.extend(extra);
        args.push(dst);
        let out = self.exec(ns, &args);
        parse_ping(&String::from_utf8_lossy(&out.stdout)).unwrap_or_else(|| {
            panic!(
                "cannot read ping summary: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

impl Drop for NsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Whether `tc` can install fq in namespace `ns` (on its loopback), removing it again: measured
/// independently of the daemon, which must agree (`features.fq`).
pub fn kernel_has_fq(ns: &str) -> bool {
    let tc = |args: &[&str]| {
        Command::new("tc")
            .args(["-n", ns, "qdisc"])
            .args(args)
            .output()
            .expect("tc (iproute2)")
    };
    let added = tc(&["add", "dev", "lo", "root", "fq"]);
    let ok = added.status.success();
    if ok {
        tc(&["del", "dev", "lo", "root"]);
    } else {
        eprintln!("tc says: {}", String::from_utf8_lossy(&added.stderr).trim());
    }
    ok
}

/// Extracts (transmitted, received) from ping's summary line.
pub fn parse_ping(out: &str) -> Option<(u32, u32)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .map(|part| part.split_whitespace().next()?.parse::<u32>().ok());
    Some((nums.next()??, nums.next()??))
}

/// Runs `f` on a thread that has entered namespace `ns`, so sockets it opens and interfaces it
/// names live there. The calling thread's namespace is untouched.
pub fn in_ns<R: Send>(ns: &str, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(format!("/run/netns/{ns}"))
                .unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
            setns(&file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {ns}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_ping_summary() {
        let out = "--- 10.0.0.2 ping statistics ---\n2000 packets transmitted, 1391 received, 30.45% packet loss, time 4123ms\n";
        assert_eq!(super::parse_ping(out), Some((2000, 1391)));
        assert_eq!(super::parse_ping("garbage"), None);
    }
}
