//! Test helper for the crash test: attaches to an interface, installs one blackhole, prints
//! "ready" and waits to be killed (exits by itself after 120 s so it can never linger).
//!
//! Usage: `chaos-inject-helper IFACE egress|ingress CIDR`

use std::{io::Write, time::Duration};

use chaos_daemon::{Direction, Injector, Rule};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, iface, dir, cidr] = args.as_slice() else {
        anyhow::bail!("usage: chaos-inject-helper IFACE egress|ingress CIDR");
    };
    let direction = match dir.as_str() {
        "egress" => Direction::Egress,
        "ingress" => Direction::Ingress,
        other => anyhow::bail!("direction must be egress or ingress, not {other}"),
    };
    let mut inj = Injector::open(iface)?;
    inj.add(&Rule::blackhole(direction, cidr.parse()?))?;
    println!("ready");
    std::io::stdout().flush()?;
    std::thread::sleep(Duration::from_secs(120));
    Ok(())
}
