//! DNS faults: queries answered in the program (or dropped) by name, everything else untouched.

use chaos_daemon::loader::{DnsResponse, Match, testrun::Outcome};
use chaos_tests::{
    dns::{self, OPTION_COOKIE},
    packet::{checksums_valid, datagram},
};
use hickory_proto::{
    op::{MessageType, OpCode, ResponseCode},
    rr::RecordType,
};

use crate::*;

const CLIENT_V4: &str = "192.0.2.1";
const CLIENT_V6: &str = "fd00::1";

fn client_for(resolver: &str) -> &'static str {
    if resolver.contains(':') {
        CLIENT_V6
    } else {
        CLIENT_V4
    }
}

/// A UDP query frame from the client's port 40000 to `resolver` port 53.
fn udp_query(resolver: &str, msg: &[u8]) -> Vec<u8> {
    datagram(
        ip(client_for(resolver)),
        ip(resolver),
        L4::Udp(40000, 53),
        msg,
    )
}

fn run(inj: &mut Injector, frame: &[u8]) -> Outcome {
    inj.test_run(Direction::Egress, frame, 1).unwrap()
}

/// The DNS message of an answered frame (IPv4 or IPv6 over UDP).
fn message_of(frame: &[u8]) -> hickory_proto::op::Message {
    let l4 = if frame[12..14] == [0x86, 0xdd] {
        54
    } else {
        34
    };
    dns::parse(&frame[l4 + 8..])
}

/// Asserts that `out` is `query` turned into an answer with `rcode`: addresses, ports and MACs
/// swapped, same id and question, QR/RD/RA set, nothing in the answer sections, checksums right.
fn assert_answer(query: &[u8], out: &Outcome, rcode: ResponseCode) -> hickory_proto::op::Message {
    assert_eq!(out.verdict, Verdict::Answered, "the query was not answered");
    let a = &out.packet;
    assert_eq!(a.len(), query.len(), "an answer has the query's length");
    assert_eq!((&a[0..6], &a[6..12]), (&query[6..12], &query[0..6]), "MACs");
    let (src, dst, ports) = if query[12..14] == [0x86, 0xdd] {
        (22..38, 38..54, 54)
    } else {
        (26..30, 30..34, 34)
    };
    assert_eq!(&a[src.clone()], &query[dst.clone()], "source address");
    assert_eq!(&a[dst], &query[src], "destination address");
    assert_eq!(&a[ports..ports + 2], &query[ports + 2..ports + 4], "ports");
    assert_eq!(&a[ports + 2..ports + 4], &query[ports..ports + 2], "ports");
    assert!(checksums_valid(a), "IP/UDP checksums of the answer");
    let q = message_of(query);
    let m = message_of(a);
    assert_eq!(m.metadata.id, q.metadata.id);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.op_code, OpCode::Query);
    assert!(m.metadata.recursion_desired && m.metadata.recursion_available);
    assert!(!m.metadata.authoritative && !m.metadata.truncation);
    assert_eq!(m.metadata.response_code, rcode);
    assert_eq!(m.queries, q.queries, "the question is echoed");
    assert!(m.answers.is_empty() && m.authorities.is_empty());
    m
}

fn assert_untouched(inj: &mut Injector, frame: &[u8], why: &str) {
    let out = run(inj, frame);
    assert_eq!(out.verdict, Pass, "{why}");
    assert_eq!(out.packet, frame, "{why}: the packet changed");
}

#[test]
fn exact_names_are_answered_with_the_chosen_code_v4_and_v6() {
    let mut inj = injector();
    inj.add(&Rule::dns("api.example.com", DnsResponse::NxDomain))
        .unwrap();
    for (resolver, rtype, edns) in [
        ("10.0.0.53", RecordType::A, false),
        ("10.0.0.53", RecordType::AAAA, true),
        ("fd00::53", RecordType::AAAA, false),
        ("fd00::53", RecordType::A, true),
    ] {
        let msg = dns::query("api.example.com.", rtype, 0x1234, edns);
        let frame = udp_query(resolver, &msg);
        let m = assert_answer(&frame, &run(&mut inj, &frame), ResponseCode::NXDomain);
        assert_eq!(m.queries[0].query_type(), rtype);
        match m.edns {
            Some(e) if edns => {
                assert_eq!(e.max_payload(), 1232, "the OPT record is kept");
                assert!(
                    e.option(OPTION_COOKIE.into()).is_none(),
                    "the client's cookie is not echoed as if the server had set it"
                );
            }
            None if !edns => {}
            other => panic!("EDNS in the answer: {other:?} (query had EDNS: {edns})"),
        }
    }
    let other = udp_query(
        "10.0.0.53",
        &dns::query("www.example.com.", RecordType::A, 7, true),
    );
    assert_untouched(&mut inj, &other, "another name");
}

#[test]
fn wildcards_cover_names_below_but_not_the_apex_and_exact_rules_win() {
    let mut inj = injector();
    inj.add(&Rule::dns("*.example.com", DnsResponse::ServFail))
        .unwrap();
    inj.add(&Rule::dns("api.example.com", DnsResponse::Refused))
        .unwrap();
    let ask = |name: &str| udp_query("10.0.0.53", &dns::query(name, RecordType::A, 9, false));
    for (name, rcode) in [
        ("a.example.com.", ResponseCode::ServFail),
        ("a.b.c.example.com.", ResponseCode::ServFail),
        ("api.example.com.", ResponseCode::Refused),
        ("x.api.example.com.", ResponseCode::ServFail),
        ("API.Example.COM.", ResponseCode::Refused),
        ("Deep.Example.Com.", ResponseCode::ServFail),
    ] {
        let f = ask(name);
        assert_answer(&f, &run(&mut inj, &f), rcode);
    }
    for name in ["example.com.", "badexample.com.", "example.org.", "com."] {
        assert_untouched(&mut inj, &ask(name), name);
    }
}

#[test]
fn wildcards_at_several_depths_pick_the_longest_suffix() {
    let mut inj = injector();
    let deep = ["y"; 70].join(".");
    for (domain, response) in [
        ("*.com", DnsResponse::Refused),
        ("*.example.com", DnsResponse::ServFail),
        ("*.b.example.com", DnsResponse::NxDomain),
        (&format!("*.{deep}")[..], DnsResponse::NxDomain),
    ] {
        inj.add(&Rule::dns(domain, response)).unwrap();
    }
    let ask = |name: &str| udp_query("10.0.0.53", &dns::query(name, RecordType::A, 2, false));
    for (name, rcode) in [
        ("x.b.example.com.", ResponseCode::NXDomain),
        ("a.b.c.d.example.com.", ResponseCode::ServFail),
        ("x.example.com.", ResponseCode::ServFail),
        ("b.example.com.", ResponseCode::ServFail),
        ("example.com.", ResponseCode::Refused),
        ("other.com.", ResponseCode::Refused),
        (&format!("z.{deep}.")[..], ResponseCode::NXDomain),
    ] {
        let f = ask(name);
        assert_answer(&f, &run(&mut inj, &f), rcode);
    }
    assert_untouched(&mut inj, &ask("com."), "the apex of *.com");
    assert_untouched(&mut inj, &ask(&format!("{deep}.")), "the 70-label apex");
}

#[test]
fn the_longest_names_match_and_longer_ones_pass() {
    // 63 + 63 + 63 + 61 characters and three dots: 253, the most a name may have.
    let labels = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61),
    ];
    let longest = labels.join(".");
    assert_eq!(longest.len(), 253);
    let mut inj = injector();
    inj.add(&Rule::dns(&longest, DnsResponse::NxDomain))
        .unwrap();
    let f = udp_query(
        "fd00::53",
        &dns::query(
            &format!("{}.", longest.to_uppercase()),
            RecordType::AAAA,
            3,
            true,
        ),
    );
    assert_answer(&f, &run(&mut inj, &f), ResponseCode::NXDomain);
    inj.add(&Rule::dns("*.example", DnsResponse::NxDomain))
        .unwrap();
    let deep = format!("{}.example.", ["x"; 120].join("."));
    let f = udp_query("10.0.0.53", &dns::query(&deep, RecordType::A, 4, false));
    assert_answer(&f, &run(&mut inj, &f), ResponseCode::NXDomain);
    // The most labels a name can have: 127 one-letter labels (253 characters).
    inj.add(&Rule::dns("*.x", DnsResponse::ServFail)).unwrap();
    let most = format!("{}.", ["x"; 127].join("."));
    let f = udp_query("10.0.0.53", &dns::query(&most, RecordType::A, 5, false));
    assert_answer(&f, &run(&mut inj, &f), ResponseCode::ServFail);
    // Four 63-letter labels: 257 bytes on the wire, over the limit of 255.
    let mut too_long = dns::query("a.x.", RecordType::A, 6, false)[..12].to_vec();
    for _ in 0..4 {
        too_long.push(63);
        too_long.extend_from_slice(&[b'x'; 63]);
    }
    too_long.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_untouched(
        &mut inj,
        &udp_query("10.0.0.53", &too_long),
        "a 257-byte name",
    );
}

#[test]
fn drop_rules_and_tcp_queries_are_dropped() {
    let mut inj = injector();
    inj.add(&Rule::dns("gone.example", DnsResponse::Drop))
        .unwrap();
    inj.add(&Rule::dns("fail.example", DnsResponse::ServFail))
        .unwrap();
    let udp = udp_query(
        "10.0.0.53",
        &dns::query("gone.example.", RecordType::A, 1, false),
    );
    assert_eq!(run(&mut inj, &udp).verdict, Drop);
    for name in ["gone.example.", "fail.example."] {
        let msg = dns::query(name, RecordType::A, 2, true);
        let mut stream = (msg.len() as u16).to_be_bytes().to_vec();
        stream.extend_from_slice(&msg);
        let tcp = datagram(ip(CLIENT_V4), ip("10.0.0.53"), L4::Tcp(40000, 53), &stream);
        assert_eq!(run(&mut inj, &tcp).verdict, Drop, "{name} over TCP");
    }
}

#[test]
fn resolver_network_and_port_narrow_a_rule() {
    let mut inj = injector();
    let mut r = Rule::dns("svc.example", DnsResponse::Refused);
    if let Match::Dns(m) = &mut r.matches {
        m.resolver = Some("10.0.0.0/8".parse().unwrap());
        m.port = 5353;
    }
    inj.add(&r).unwrap();
    let msg = dns::query("svc.example.", RecordType::A, 5, false);
    let at = |resolver: &str, port: u16| {
        datagram(
            ip(client_for(resolver)),
            ip(resolver),
            L4::Udp(40000, port),
            &msg,
        )
    };
    let hit = at("10.9.9.9", 5353);
    assert_answer(&hit, &run(&mut inj, &hit), ResponseCode::Refused);
    assert_untouched(&mut inj, &at("10.9.9.9", 53), "another port");
    assert_untouched(&mut inj, &at("192.0.2.53", 5353), "another resolver");
    assert_untouched(&mut inj, &at("fd00::53", 5353), "another family");
}

#[test]
fn a_wildcard_for_another_resolver_does_not_hide_a_broader_one() {
    let mut inj = injector();
    inj.add(&Rule::dns("*.test", DnsResponse::NxDomain))
        .unwrap();
    let mut narrow = Rule::dns("*.svc.test", DnsResponse::Refused);
    if let Match::Dns(m) = &mut narrow.matches {
        m.resolver = Some("10.0.0.3/32".parse().unwrap());
    }
    inj.add(&narrow).unwrap();
    let ask = |resolver: &str| {
        udp_query(
            resolver,
            &dns::query("x.svc.test.", RecordType::A, 9, false),
        )
    };
    let to_3 = ask("10.0.0.3");
    assert_answer(&to_3, &run(&mut inj, &to_3), ResponseCode::Refused);
    // The longest suffix holds a rule for .3 only: the broader `*.test` covers .2.
    let to_2 = ask("10.0.0.2");
    assert_answer(&to_2, &run(&mut inj, &to_2), ResponseCode::NXDomain);
    let v6 = ask("fd00::53");
    assert_answer(&v6, &run(&mut inj, &v6), ResponseCode::NXDomain);
}

#[test]
fn odd_and_malformed_messages_pass_untouched() {
    let mut inj = injector();
    inj.add(&Rule::dns("*.example", DnsResponse::NxDomain))
        .unwrap();
    let good = dns::query("a.example.", RecordType::A, 6, true);
    let resolver = "10.0.0.53";
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut response = good.clone();
    response[2] |= 0x80;
    cases.push(("a response", response));
    let mut update = good.clone();
    update[2] |= 5 << 3;
    cases.push(("an UPDATE", update));
    let mut two = good.clone();
    two[5] = 2;
    cases.push(("two questions", two));
    let mut with_answer = good.clone();
    with_answer[7] = 1;
    cases.push(("an answer record", with_answer));
    cases.push(("cut inside the name", good[..15].to_vec()));
    cases.push(("no type and class", good[..12 + 11].to_vec()));
    // The name as a compression pointer to offset 12.
    let mut pointer = good[..12].to_vec();
    pointer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    cases.push(("a compression pointer", pointer));
    // A label holding a dot could pose as two labels.
    let mut dotted = good[..12].to_vec();
    dotted.extend_from_slice(b"\x09a.example\x00\x00\x01\x00\x01");
    cases.push(("a dot inside a label", dotted));
    // A signed query (the additional record is not an OPT) is not answered unsigned.
    let mut signed = dns::query("a.example.", RecordType::A, 6, false);
    signed[11] = 1;
    signed.extend_from_slice(&[0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0]);
    cases.push(("a TSIG record", signed));
    cases.push(("only a header", good[..12].to_vec()));
    // What an answer in place would echo or run past: it must not be half-rewritten either
    // (the MACs, addresses and ports were swapped before the options' load failed, and the
    // query left as a packet from the resolver).
    let plain = dns::query("a.example.", RecordType::A, 6, false);
    let options = good.len() - OPT_COOKIE_LEN;
    let with_rdlen = |mut m: Vec<u8>, rdlen: u16| {
        let at = options - 2;
        m[at..at + 2].copy_from_slice(&rdlen.to_be_bytes());
        m
    };
    cases.push((
        "an OPT declaring 4 option bytes it does not carry",
        with_rdlen(good[..options].to_vec(), 4),
    ));
    cases.push((
        "an OPT whose RDLENGTH runs past the message",
        with_rdlen(good.clone(), OPT_COOKIE_LEN as u16 + 8),
    ));
    cases.push((
        "an OPT with 2 option bytes",
        with_rdlen(good[..options + 2].to_vec(), 2),
    ));
    cases.push(("bytes after the question", [&plain[..], b"xyz"].concat()));
    cases.push(("bytes after the OPT record", [&good[..], b"xy"].concat()));
    for resolver in [resolver, "fd00::53"] {
        for (why, msg) in &cases {
            assert_untouched(&mut inj, &udp_query(resolver, msg), why);
        }
        // Bytes after the datagram in the frame (its IP and UDP lengths end before them).
        let padded = [&udp_query(resolver, &good)[..], &[0u8; 6]].concat();
        assert_untouched(&mut inj, &padded, "a frame longer than its datagram");
        let frame = udp_query(resolver, &good);
        assert_answer(&frame, &run(&mut inj, &frame), ResponseCode::NXDomain);
        let frame = udp_query(resolver, &plain);
        assert_answer(&frame, &run(&mut inj, &frame), ResponseCode::NXDomain);
    }
}

/// The cookie option `dns::query` puts in an EDNS query: code, length and 8 bytes.
const OPT_COOKIE_LEN: usize = 4 + 8;

#[test]
fn ip_rules_still_apply_to_dns_traffic_no_domain_rule_covers() {
    let mut inj = injector();
    inj.add(&rule("10.0.0.53/32")).unwrap();
    inj.add(&Rule::dns("x.example", DnsResponse::NxDomain))
        .unwrap();
    let ask = |name: &str| udp_query("10.0.0.53", &dns::query(name, RecordType::A, 8, false));
    assert_eq!(run(&mut inj, &ask("y.example.")).verdict, Drop);
    let f = ask("x.example.");
    assert_answer(&f, &run(&mut inj, &f), ResponseCode::NXDomain);
    assert_eq!(egress(&mut inj, "10.0.0.53", L4::Tcp(40000, 443)), Drop);
}

#[test]
fn counters_expiry_and_removal() {
    let mut inj = injector();
    let id = inj
        .add(&Rule::dns("c.example", DnsResponse::ServFail))
        .unwrap();
    let hit = udp_query(
        "10.0.0.53",
        &dns::query("c.example.", RecordType::A, 1, false),
    );
    let miss = udp_query(
        "10.0.0.53",
        &dns::query("d.example.", RecordType::A, 1, false),
    );
    for _ in 0..3 {
        assert_eq!(run(&mut inj, &hit).verdict, Verdict::Answered);
    }
    assert_untouched(&mut inj, &miss, "another name");
    let c = inj.counters(id).unwrap();
    assert_eq!((c.matched_packets, c.affected_packets), (3, 3));
    inj.remove(id).unwrap();
    assert_untouched(&mut inj, &hit, "after removal");
    inj.add(&Rule::dns("c.example", DnsResponse::ServFail).expiring_at(monotonic_ns() - 1))
        .unwrap();
    assert_untouched(&mut inj, &hit, "after the TTL");
}

#[test]
fn a_name_has_one_rule_per_interface() {
    let mut inj = injector();
    inj.add(&Rule::dns("one.example", DnsResponse::ServFail))
        .unwrap();
    for again in ["one.example", "ONE.Example"] {
        let dup = inj.add(&Rule::dns(again, DnsResponse::Refused));
        assert!(
            matches!(dup, Err(chaos_daemon::loader::Error::Conflict { .. })),
            "{again}: {dup:?}"
        );
    }
    inj.add(&Rule::dns("*.one.example", DnsResponse::Refused))
        .expect("a wildcard below the name is another rule");
}
