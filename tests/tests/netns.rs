//! Network-namespace tests: real packets (ping, TCP, UDP) between two namespaces joined by a
//! veth, with the programs attached by the real loader. Needs root; fails with the reason otherwise.

use std::{
    io::{BufRead, BufReader},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use chaos_daemon::{Action, Direction, Injector, Protocol, Rule};
use chaos_tests::netns::{
    A4, A4_ALT, A6, A6_ALT, B4, B4_ALT, B6, B6_ALT, NsPair, VETH_A, VETH_B, in_ns,
};

/// A blackhole for a CIDR or bare address.
fn rule(dir: Direction, net: &str) -> Rule {
    Rule::blackhole(dir, chaos_daemon::validate::parse_net(net).unwrap())
}

/// Opens an injector on `iface` inside `ns` and installs `rules` there (attach happens in `ns`).
fn inject(ns: &str, iface: &str, rules: &[Rule]) -> Injector {
    in_ns(ns, || {
        let mut inj = Injector::open(iface).expect("open injector (needs root)");
        inj.add_batch(rules).expect("install rules");
        inj
    })
}

/// Blackholes `dst` (a full-length prefix) and checks that `neighbour`, in the same subnet, is
/// untouched, and that dropping the injector lifts the fault.
fn blackhole_one_address(tag: &str, dst: &str, neighbour: &str) {
    let p = NsPair::new(tag);
    assert_eq!(p.ping(&p.a, dst, None, 3, "0.05"), (3, 3), "baseline");
    // Nothing listens on port 9 in B: its kernel answers a SYN with a reset.
    let connect = || {
        in_ns(&p.a, || {
            let to = SocketAddr::new(dst.parse().unwrap(), 9);
            TcpStream::connect_timeout(&to, Duration::from_millis(700))
                .map(|_| ())
                .map_err(|e| e.kind())
        })
    };
    assert_eq!(
        connect(),
        Err(std::io::ErrorKind::ConnectionRefused),
        "baseline"
    );
    let inj = inject(&p.a, VETH_A, &[rule(Direction::Egress, dst)]);
    assert_eq!(
        p.ping(&p.a, dst, None, 10, "0.05"),
        (10, 0),
        "blackholed address"
    );
    // Silent, like a network loss: no local send error for ping, a timeout for TCP.
    let out = p.exec(
        &p.a,
        &["ping", "-n", "-c", "2", "-i", "0.05", "-W", "1", dst],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No buffer space"),
        "drop surfaced as a local error: {stderr}"
    );
    assert_eq!(
        connect(),
        Err(std::io::ErrorKind::TimedOut),
        "TCP must time out, not fail locally"
    );
    assert_eq!(
        p.ping(&p.a, neighbour, None, 10, "0.05"),
        (10, 10),
        "neighbour in the same subnet"
    );
    drop(inj);
    assert_eq!(p.ping(&p.a, dst, None, 3, "0.05"), (3, 3), "after detach");
}

#[test]
fn egress_blackhole_v4_drops_one_address_only() {
    blackhole_one_address("bh4", B4, B4_ALT);
}

#[test]
fn egress_blackhole_v6_drops_one_address_only() {
    blackhole_one_address("bh6", B6, B6_ALT);
}

/// A UDP rule on `port` for `subnet` drops UDP to that port from `src` to `dst`, and spares TCP
/// on the same port and UDP on the next port.
fn udp_port_rule_spares_tcp(tag: &str, subnet: &str, src: &str, dst: &str) {
    let p = NsPair::new(tag);
    let port = 5353;
    let dst_ip: IpAddr = dst.parse().unwrap();
    let _inj = inject(
        &p.a,
        VETH_A,
        &[rule(Direction::Egress, subnet).on(Protocol::Udp, Some(port))],
    );
    // Servers in B: a UDP socket and a TCP listener on the same port, and UDP on the next one.
    let (udp_server, tcp_server) = in_ns(&p.b, || {
        let u = UdpSocket::bind((dst_ip, port)).unwrap();
        u.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let t = TcpListener::bind((dst_ip, port)).unwrap();
        let other = UdpSocket::bind((dst_ip, port + 1)).unwrap();
        other
            .set_read_timeout(Some(Duration::from_millis(2000)))
            .unwrap();
        ((u, other), t)
    });
    in_ns(&p.a, || {
        let client = UdpSocket::bind((src.parse::<IpAddr>().unwrap(), 0)).unwrap();
        for _ in 0..5 {
            client.send_to(b"x", (dst_ip, port)).unwrap();
            client.send_to(b"y", (dst_ip, port + 1)).unwrap();
        }
        let tcp =
            TcpStream::connect_timeout(&SocketAddr::new(dst_ip, port), Duration::from_secs(2));
        assert!(
            tcp.is_ok(),
            "TCP to the UDP rule's port must connect: {tcp:?}"
        );
    });
    let mut buf = [0u8; 8];
    assert!(
        udp_server.0.recv_from(&mut buf).is_err(),
        "UDP to the faulted port must be dropped"
    );
    let got = udp_server.1.recv_from(&mut buf);
    assert!(got.is_ok(), "UDP to another port must pass: {got:?}");
    drop(tcp_server);
}

#[test]
fn udp_port_rule_spares_tcp_on_the_same_port_v4() {
    udp_port_rule_spares_tcp("udp4", "10.200.0.0/24", A4, B4);
}

#[test]
fn udp_port_rule_spares_tcp_on_the_same_port_v6() {
    udp_port_rule_spares_tcp("udp6", "fd00:c4a0::/64", A6, B6);
}

/// 30 % loss to `dst` over 2000 pings lands within 5 sigma, and the kernel counters agree.
fn loss_30_percent(tag: &str, dst: &str) {
    let p = NsPair::new(tag);
    let inj = inject(
        &p.a,
        VETH_A,
        &[Rule {
            action: Action::Loss { ppm: 300_000 },
            ..rule(Direction::Egress, dst)
        }],
    );
    let (sent, received) = p.ping(&p.a, dst, None, 2000, "0.002");
    assert_eq!(sent, 2000);
    let lost = f64::from(sent - received);
    let (mean, sigma) = (600.0, (2000.0f64 * 0.3 * 0.7).sqrt());
    assert!(
        (lost - mean).abs() <= 5.0 * sigma,
        "lost {lost} of 2000, expected 600 ± {:.0}",
        5.0 * sigma
    );
    // The counters saw every request and dropped exactly the lost ones (replies come back on
    // ingress, which has no rule).
    let c = counters_of_only_rule(&inj);
    assert_eq!(c.matched_packets, 2000);
    assert_eq!(c.affected_packets as f64, lost);
}

#[test]
fn loss_30_percent_over_2000_pings_within_5_sigma_v4() {
    loss_30_percent("loss4", B4);
}

#[test]
fn loss_30_percent_over_2000_pings_within_5_sigma_v6() {
    loss_30_percent("loss6", B6);
}

fn counters_of_only_rule(inj: &Injector) -> chaos_common::Counters {
    inj.rule_ids()
        .into_iter()
        .map(|id| inj.counters(id).unwrap())
        .next()
        .expect("one rule")
}

#[test]
fn xdp_ingress_blackhole_by_source_v4_and_v6() {
    let p = NsPair::new("xdp");
    let _inj = inject(
        &p.b,
        VETH_B,
        &[
            rule(Direction::Ingress, &format!("{A4}/32")),
            rule(Direction::Ingress, &format!("{A6}/128")),
        ],
    );
    assert_eq!(
        p.ping(&p.a, B4, Some(A4), 10, "0.05"),
        (10, 0),
        "from the blackholed source"
    );
    assert_eq!(
        p.ping(&p.a, B4, Some(A4_ALT), 10, "0.05"),
        (10, 10),
        "from another source"
    );
    assert_eq!(
        p.ping(&p.a, B6, Some(A6), 10, "0.05"),
        (10, 0),
        "v6 from the blackholed source"
    );
    assert_eq!(
        p.ping(&p.a, B6, Some(A6_ALT), 10, "0.05"),
        (10, 10),
        "v6 from another source"
    );
}

#[test]
fn sigkill_of_the_loader_detaches_everything_within_a_second() {
    let p = NsPair::new("crash");
    let helper = env!("CARGO_BIN_EXE_chaos-inject-helper");
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &p.a,
            helper,
            VETH_A,
            "egress",
            &format!("{B4}/32"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "helper did not start");
    assert_eq!(
        p.attached(&p.a, VETH_A),
        (1, false),
        "helper's program attached"
    );
    assert_eq!(
        p.ping(&p.a, B4, None, 3, "0.05"),
        (3, 0),
        "blackhole active"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    let mut recovered = None;
    while killed.elapsed() < Duration::from_secs(1) {
        if p.ping(&p.a, B4, None, 1, "0.05") == (1, 1) {
            recovered = Some(killed.elapsed());
            break;
        }
    }
    assert!(
        recovered.is_some(),
        "traffic did not recover within 1 s of SIGKILL"
    );
    assert_eq!(
        p.attached(&p.a, VETH_A),
        (0, false),
        "a TCX or XDP program is still attached to {VETH_A}"
    );
}
