//! `cargo xtask demo`: a narrated end-to-end run of the real daemon and CLI in two network
//! namespaces. Everything it creates is removed at the end, also on failure.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use chaos_tests::{
    daemon::Daemon,
    netns::{A4, B4, B4_ALT, NsPair, VETH_A},
};
use nix::sys::signal::Signal;

fn say(text: &str) {
    println!("\n{text}");
}

/// Loss in percent from `count` pings `interval` apart.
fn loss(p: &NsPair, dst: &str, count: u32, interval: &str) -> f64 {
    let (sent, received) = p.ping(&p.a, dst, None, count, interval);
    100.0 * f64::from(sent - received) / f64::from(sent.max(1))
}

fn both(p: &NsPair) -> (f64, f64) {
    (loss(p, B4, 20, "0.01"), loss(p, B4_ALT, 20, "0.01"))
}

/// Runs chaosctl, echoing the command line and its output.
fn ctl(d: &Daemon, args: &[&str]) -> Result<String> {
    println!("   $ chaosctl {}", args.join(" "));
    let out = d.ctl(args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in text.lines() {
        println!("     {line}");
    }
    ensure!(
        out.status.success(),
        "chaosctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text)
}

fn id_of(created: &str) -> Result<String> {
    created
        .split_whitespace()
        .nth(1)
        .map(|s| s.trim_end_matches(':').to_string())
        .context("no id in chaosctl output")
}

fn main() -> Result<()> {
    let started = Instant::now();
    // The binaries sit next to this one (target/release or target/debug).
    let exe = std::env::current_exe()?;
    // SAFETY: single-threaded at this point; nothing reads the environment concurrently.
    unsafe { std::env::set_var("CHAOS_BIN_DIR", exe.parent().unwrap_or(Path::new("."))) };

    println!("chaos demo: per-destination network faults in eBPF, with nothing left behind.");
    let p = NsPair::new("demo");
    say(&format!(
        "Setup: namespace {} (va {A4}) joined by a veth to namespace {} (vb {B4} and {B4_ALT}).",
        p.a, p.b
    ));
    let t = Instant::now();
    let d = Daemon::start(&p.a, "");
    println!(
        "chaos-daemon runs inside {} on socket {} (up and answering in {} ms).",
        p.a,
        d.socket.display(),
        t.elapsed().as_millis()
    );

    say("1. Baseline: 20 pings to each address.");
    let (x, y) = both(&p);
    println!("   {B4}: {x:.0} % loss   {B4_ALT}: {y:.0} % loss");

    say(&format!(
        "2. Blackhole one address, {B4}; its neighbour {B4_ALT} in the same /24 must not notice."
    ));
    let created = ctl(
        &d,
        &[
            "add",
            "blackhole",
            "--to",
            B4,
            "--ttl",
            "60s",
            "--name",
            "demo-blackhole",
        ],
    )?;
    let (x, y) = both(&p);
    println!("   {B4}: {x:.0} % loss   {B4_ALT}: {y:.0} % loss");
    ensure!(x == 100.0 && y == 0.0, "blackhole did not behave");
    ctl(&d, &["rm", &id_of(&created)?])?;
    println!("   after rm: {B4}: {:.0} % loss", loss(&p, B4, 20, "0.01"));

    say(&format!(
        "3. 30 % loss to {B4}: 500 pings, then the live counters from `chaosctl ls`."
    ));
    ctl(
        &d,
        &[
            "add",
            "loss",
            "--to",
            B4,
            "--percent",
            "30",
            "--ttl",
            "60s",
            "--name",
            "demo-loss",
        ],
    )?;
    let l = loss(&p, B4, 500, "0.004");
    println!("   measured: {l:.1} % of 500 pings lost (binomial 5-sigma band: 20.3–39.7 %)");
    ctl(&d, &["ls"])?;
    ctl(&d, &["rm", "--all"])?;

    say("4. A fault that lifts itself: blackhole with a 3 s TTL, no delete.");
    ctl(&d, &["add", "blackhole", "--to", B4, "--ttl", "3s"])?;
    let t = Instant::now();
    println!("   t=0 s: {B4}: {:.0} % loss", loss(&p, B4, 10, "0.01"));
    std::thread::sleep(Duration::from_millis(3200).saturating_sub(t.elapsed()));
    println!(
        "   t={:.1} s: {B4}: {:.0} % loss",
        t.elapsed().as_secs_f64(),
        loss(&p, B4, 10, "0.01")
    );
    ctl(&d, &["ls"])?;

    say("5. The panic button: two faults, then `chaosctl rm --all`.");
    ctl(&d, &["add", "blackhole", "--to", B4, "--ttl", "10m"])?;
    ctl(
        &d,
        &[
            "add",
            "loss",
            "--to",
            B4_ALT,
            "--percent",
            "100",
            "--ttl",
            "10m",
        ],
    )?;
    let (x, y) = both(&p);
    println!("   before: {B4}: {x:.0} % loss   {B4_ALT}: {y:.0} % loss");
    ctl(&d, &["rm", "--all"])?;
    let (x, y) = both(&p);
    println!("   after:  {B4}: {x:.0} % loss   {B4_ALT}: {y:.0} % loss");

    say("6. kill -9 of the daemon while a fault is active: the kernel detaches its links.");
    ctl(&d, &["add", "blackhole", "--to", B4, "--ttl", "10m"])?;
    let tcx = || p.attached(&p.a, VETH_A).0;
    println!(
        "   before: {B4}: {:.0} % loss, programs attached to va: {}",
        loss(&p, B4, 10, "0.01"),
        tcx()
    );
    d.signal(Signal::SIGKILL);
    let mut d = d;
    d.wait_exit();
    println!(
        "   after kill -9: {B4}: {:.0} % loss, programs attached to va: {}",
        loss(&p, B4, 10, "0.01"),
        tcx()
    );
    ensure!(
        p.attached(&p.a, VETH_A) == (0, false),
        "a program stayed attached"
    );

    drop(d);
    drop(p);
    say(&format!(
        "Done in {:.1} s: namespaces, socket and programs are gone. Try `chaosctl --help` next.",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
