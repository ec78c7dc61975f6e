//! Bulk traffic between the namespaces of an [`NsPair`] with iperf3, bounded in time: goodput,
//! retransmissions and losses as the receiver saw them; the server process is killed even when
//! a test fails.

use std::{
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU16, Ordering},
};

use serde_json::Value;

use crate::netns::{A4, B4, NsPair};

/// An iperf3 server for one test in a namespace; killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a transfer achieved, as the receiver saw it.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    /// Payload bits per second received.
    pub goodput_bps: f64,
    /// TCP: segments the sender retransmitted.
    pub retransmits: u64,
    /// UDP: datagrams lost.
    pub lost: u64,
}

impl Transfer {
    /// Goodput in Mbit/s.
    pub fn mbit(&self) -> f64 {
        self.goodput_bps / 1e6
    }
}

/// What to send.
#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// TCP, as fast as it goes.
    Tcp,
    /// UDP datagrams of 1400 bytes offered at this many Mbit/s.
    Udp(u32),
    /// UDP datagrams of this many payload bytes, as fast as the sender can: per-packet cost.
    UdpPackets(u16),
}

/// Where traffic goes: from a namespace (optionally from one of its addresses) to an address
/// in another, where the server runs.
#[derive(Clone, Copy, Debug)]
pub struct Path<'a> {
    /// Sender's namespace.
    pub from: &'a str,
    /// Sender's source address (default: the route's).
    pub src: Option<&'a str>,
    /// Receiver's namespace.
    pub to: &'a str,
    /// Receiver's address.
    pub dst: &'a str,
}

impl<'a> Path<'a> {
    /// From A to B's address: what faults on A's egress act on (A's data).
    pub fn a_to_b(p: &'a NsPair) -> Path<'a> {
        Path {
            from: &p.a,
            src: None,
            to: &p.b,
            dst: B4,
        }
    }

    /// From B's address to A: B's data, whose ACKs leave through A's egress.
    pub fn b_to_a(p: &'a NsPair) -> Path<'a> {
        Path {
            from: &p.b,
            src: Some(B4),
            to: &p.a,
            dst: A4,
        }
    }
}

/// Sends `load` along `path` for `secs` seconds (at most 30). A run that fails before any data
/// was measured is retried twice with a fresh server.
pub fn send(p: &NsPair, path: Path, load: Load, secs: u32) -> Transfer {
    assert!(secs <= 30, "load tests are bounded");
    let mut failures = Vec::new();
    for _ in 0..3 {
        match attempt(p, path, load, secs) {
            Ok(t) => return t,
            Err(e) => failures.push(e),
        }
    }
    panic!("iperf3 {load:?} {path:?} failed three times: {failures:#?}");
}

fn attempt(p: &NsPair, path: Path, load: Load, secs: u32) -> Result<Transfer, String> {
    static NEXT_PORT: AtomicU16 = AtomicU16::new(5201);
    let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed).to_string();
    let secs = secs.to_string();
    let server = Server(
        Command::new("ip")
            // Bound to `dst`, so UDP replies come from the address the client sent to (not the
            // route's primary address, which the client's connected socket would ignore).
            .args(["netns", "exec", path.to, "iperf3", "-s", "-1", "-p", &port, "-B", path.dst])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 (apt package iperf3)"),
    );
    let mut args = vec!["iperf3", "-c", path.dst, "-p", &port, "-t", &secs, "-J"];
    if let Some(src) = path.src {
        args.extend(["-B", src]);
    }
    let (rate, size);
    match load {
        Load::Tcp => {}
        Load::Udp(mbit) => {
            rate = format!("{mbit}M");
            args.extend(["-u", "-l", "1400", "-b", &rate]);
        }
        Load::UdpPackets(bytes) => {
            size = bytes.to_string();
            args.extend(["-u", "-l", &size, "-b", "0"]);
        }
    }
    // The server needs a moment to listen: retry while the connection is refused (a one-off
    // server that accepted a client is gone, so nothing else is retried here).
    let mut text = String::new();
    for _ in 0..50 {
        text = String::from_utf8_lossy(&p.exec(path.from, &args).stdout).into_owned();
        if !text.contains("unable to connect to server: Connection refused") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(server);
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let received = &v["end"]["sum_received"];
    let goodput_bps = received["bits_per_second"]
        .as_f64()
        .ok_or_else(|| v["error"].as_str().map_or(text.clone(), str::to_string))?;
    Ok(Transfer {
        goodput_bps,
        retransmits: v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
        lost: received["lost_packets"].as_u64().unwrap_or(0),
    })
}

/// Held by a test while it measures time or throughput, so that tests in the same binary do
/// not measure each other's load (the VMs have one CPU).
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
