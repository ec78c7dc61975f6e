//! Pure translation of a [`Rule`] into map entries: which map, the key bytes, the slot value and
//! the prefilter range and prefix length (IP rules) or the watched port and domain-rule value
//! (DNS rules). No I/O, so it is unit-tested directly.

use std::ops::RangeInclusive;

use chaos_common::{
    ACTION_BANDWIDTH, ACTION_BLACKHOLE, ACTION_DNS, ACTION_LATENCY, ACTION_LOSS, DnsRule,
    FLAG_REORDER, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, MAX_SCOPE_LEVEL,
    PORT_ANY, PPM_ALL, PREFILTER_V6_BITS, PROTO_ANY, RuleKeyV4, RuleKeyV6, RuleSlot, dns_hash,
    dns_key, key_shape, prefilter_table, rule_key_v4, rule_key_v6,
};
use ipnet::IpNet;

use super::{Action, Direction, DnsMatch, Error, Match, Protocol, Rule};

/// Which direction and family a rule is for (its prefilter and prefix-length tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// IPv4 egress (`RULES_V4`).
    V4Egress,
    /// IPv6 egress (`RULES_V6`).
    V6Egress,
    /// IPv4 ingress (`RULES_V4`).
    V4Ingress,
    /// IPv6 ingress (`RULES_V6`).
    V6Ingress,
    /// `DNS_RULES` (egress).
    Dns,
}

impl Table {
    /// The table for a direction and address family.
    pub fn new(direction: Direction, ipv6: bool) -> Table {
        match (direction, ipv6) {
            (Direction::Egress, false) => Table::V4Egress,
            (Direction::Egress, true) => Table::V6Egress,
            (Direction::Ingress, false) => Table::V4Ingress,
            (Direction::Ingress, true) => Table::V6Ingress,
        }
    }

    fn direction(self) -> Direction {
        match self {
            Table::V4Egress | Table::V6Egress | Table::Dns => Direction::Egress,
            Table::V4Ingress | Table::V6Ingress => Direction::Ingress,
        }
    }

    /// Map name in the eBPF object.
    pub fn map_name(self) -> &'static str {
        match self {
            Table::V4Egress | Table::V4Ingress => "RULES_V4",
            Table::V6Egress | Table::V6Ingress => "RULES_V6",
            Table::Dns => "DNS_RULES",
        }
    }

    /// The LPM trie of this table's overflow rules.
    pub fn trie_name(self) -> &'static str {
        match self {
            Table::V4Egress => "RULES_V4_EGRESS",
            Table::V6Egress => "RULES_V6_EGRESS",
            Table::V4Ingress => "RULES_V4_INGRESS",
            Table::V6Ingress => "RULES_V6_INGRESS",
            Table::Dns => "DNS_RULES",
        }
    }

    /// Index of this table's prefilter bitmap.
    pub fn prefilter(self) -> u32 {
        prefilter_table(
            self.direction(),
            matches!(self, Table::V6Egress | Table::V6Ingress),
        )
    }
}

/// Key bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyData {
    /// `RULES_V4` key.
    V4(RuleKeyV4),
    /// `RULES_V6` key.
    V6(RuleKeyV6),
    /// A name for `DNS_RULES` (`chaos_common::dns_key`): the bytes the prefix covers (the
    /// rest are zero), boxed so IP keys stay small.
    Dns(Box<[u8]>),
}

/// Where a rule's slot index is stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MapKey {
    /// Direction and family (selects the map and the prefilter table).
    pub table: Table,
    /// The CIDR's bits (IP rules) or the encoded name's bits (domain rules).
    pub prefix_len: u32,
    /// Key bytes, address masked to the prefix.
    pub data: KeyData,
}

impl MapKey {
    /// Name of the map the key lives in.
    pub fn map_name(&self) -> &'static str {
        self.table.map_name()
    }
}

/// Which map holds an IP rule's key: set by `RuleMaps::place`, the same for every rule of one
/// (table, prefix length, shape) while any is installed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Home {
    /// `RULES_V4`/`RULES_V6`, probed through the table's `PROBES` list.
    #[default]
    Hash,
    /// The table's LPM trie (the list had no room for the pair).
    Trie,
}

/// A rule ready for the maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compiled {
    /// Where and under which key the slot index goes (the hash-map form; a trie key is derived
    /// from it).
    pub key: MapKey,
    /// Hash map or trie (IP rules).
    pub home: Home,
    /// Slot value (generation left 0; the injector fills it).
    pub slot: RuleSlot,
    /// What lets packets reach the key.
    pub index: Index,
}

/// How packets reach a rule's key besides the key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Index {
    /// IP rules: the prefilter bits, the (shape, length) the lookups must probe, the scope level.
    Ip {
        /// Range of prefilter buckets ([`chaos_common::prefilter_bucket`]) the rule may match.
        prefilter: RangeInclusive<u16>,
        /// Key shape (`SHAPE_*`): which of the per-packet lookups can find this rule.
        shape: u8,
        /// The CIDR's prefix length: its bit in the shape's `PREFIX_LENGTHS` set.
        length: u8,
        /// The `SCOPE_LEVELS` bit of a scoped rule: the cgroup level the program must probe.
        scope_level: Option<u8>,
    },
    /// Domain rules: the value stored under the name's hash (slot left 0; the injector fills
    /// it), whose port the egress classifier must send to the DNS program.
    Dns {
        /// The value.
        rule: DnsRule,
        /// Its `DNS_RULES` key: the first hash of the encoded name.
        hash: u64,
        /// A wildcard's suffix label count, for `DNS_WILDCARDS`; `None` for an exact name.
        wildcard_labels: Option<u8>,
    },
}

fn proto_number(protocol: Protocol, ipv6: bool) -> u8 {
    match protocol {
        Protocol::Any => PROTO_ANY,
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
        Protocol::Icmp if ipv6 => IPPROTO_ICMPV6,
        Protocol::Icmp => IPPROTO_ICMP,
    }
}

/// The prefilter buckets ([`chaos_common::prefilter_bucket`]) the addresses of `net` fall in:
/// one aligned range. IPv4: the /16s it covers. IPv6 folds words 0 ^ 1 ^ 2 of the address:
/// with words 0 and 1 fixed (a /32 or longer) word 2 runs over an aligned block, and XOR with a
/// constant maps an aligned block onto another; a shorter IPv6 net may hit any bucket.
pub fn prefilter_range(net: &IpNet) -> RangeInclusive<u16> {
    let (bucket, free_bits) = match net {
        IpNet::V4(n) => {
            let o = n.network().octets();
            (
                u16::from_be_bytes([o[0], o[1]]),
                16u8.saturating_sub(n.prefix_len()),
            )
        }
        IpNet::V6(n) if n.prefix_len() < PREFILTER_V6_BITS - 16 => return 0..=u16::MAX,
        IpNet::V6(n) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&n.network().octets());
            (
                chaos_common::prefilter_bucket(true, &a),
                PREFILTER_V6_BITS.saturating_sub(n.prefix_len()),
            )
        }
    };
    let span = ((1u32 << free_bits) - 1) as u16;
    let start = bucket & !span;
    start..=start | span
}

/// Compiles a domain rule.
fn compile_dns(rule: &Rule, m: &DnsMatch) -> Result<Compiled, Error> {
    let Action::Dns { response, ppm } = rule.action else {
        return Err(Error::Invalid(
            "a domain name match takes the dns action only".into(),
        ));
    };
    if rule.direction != Direction::Egress {
        return Err(Error::Invalid(
            "DNS faults act on queries leaving the host: egress only".into(),
        ));
    }
    if ppm == 0 || ppm > PPM_ALL {
        return Err(Error::Invalid(format!(
            "a probability of {ppm} ppm is outside 1..=1,000,000"
        )));
    }
    if m.port == 0 {
        return Err(Error::Invalid("port 0 is not a valid port".into()));
    }
    // Names match case-insensitively: the program lowercases the query's.
    let name = m.name.to_ascii_lowercase();
    let (data, prefix_len) = dns_key(name.as_bytes(), m.wildcard)
        .ok_or_else(|| Error::Invalid(format!("the name {:?} is too long", m.name)))?;
    let bytes = &data[..prefix_len as usize / 8];
    let [hash, check] = dns_hash(bytes);
    let mut value = DnsRule {
        check,
        port: m.port,
        ..DnsRule::default()
    };
    let mut prefix = 0;
    if let Some(net) = m.resolver.map(|n| n.trunc()) {
        let (family, addr, mask, bits) = match net {
            IpNet::V4(n) => (
                4,
                n.network().octets().to_vec(),
                n.netmask().octets().to_vec(),
                n.prefix_len(),
            ),
            IpNet::V6(n) => (
                6,
                n.network().octets().to_vec(),
                n.netmask().octets().to_vec(),
                n.prefix_len(),
            ),
        };
        value.family = family;
        value.net[..addr.len()].copy_from_slice(&addr);
        value.mask[..mask.len()].copy_from_slice(&mask);
        prefix = bits;
    }
    value.rcode = response.code();
    Ok(Compiled {
        key: MapKey {
            table: Table::Dns,
            prefix_len,
            data: KeyData::Dns(bytes.into()),
        },
        home: Home::Hash,
        slot: RuleSlot {
            action: ACTION_DNS,
            prefix_len: prefix,
            ppm,
            expires_at_ns: rule.expires_at_ns.unwrap_or(0),
            ..RuleSlot::default()
        },
        index: Index::Dns {
            rule: value,
            hash,
            wildcard_labels: m.wildcard.then(|| name.split('.').count() as u8),
        },
    })
}

/// Compiles a rule. Fails only for combinations the data plane cannot express.
pub fn compile(rule: &Rule) -> Result<Compiled, Error> {
    let m = match &rule.matches {
        Match::Dns(_) if rule.cgroup.is_some() => {
            return Err(Error::Invalid(
                "DNS faults cannot be scoped to a cgroup yet".into(),
            ));
        }
        Match::Ip(m) => m,
        Match::Dns(m) => return compile_dns(rule, m),
    };
    let scope = match rule.cgroup {
        None => 0,
        Some(_) if rule.direction == Direction::Ingress => {
            return Err(Error::Invalid(
                "received packets have no socket yet: cgroup scoping is egress only".into(),
            ));
        }
        Some(s) if s.id == 0 || s.level == 0 || u32::from(s.level) > MAX_SCOPE_LEVEL => {
            return Err(Error::Invalid(format!(
                "cgroup {} at level {} cannot be a scope (levels 1..={MAX_SCOPE_LEVEL})",
                s.id, s.level
            )));
        }
        Some(s) => s.id,
    };
    let ipv6 = matches!(m.net, IpNet::V6(_));
    let proto = proto_number(m.protocol, ipv6);
    let port = match m.port {
        None => PORT_ANY,
        Some(0) => return Err(Error::Invalid("port 0 is not a valid port".into())),
        Some(p) if matches!(m.protocol, Protocol::Icmp) => {
            return Err(Error::Invalid(format!(
                "port {p} given for ICMP, which has no ports"
            )));
        }
        Some(p) => p,
    };
    let net = m.net.trunc();
    let length = net.prefix_len();
    let direction = rule.direction;
    let table = Table::new(direction, ipv6);
    let data = match net {
        IpNet::V4(n) => KeyData::V4(rule_key_v4(
            direction,
            length,
            scope,
            proto,
            port,
            n.network().octets(),
        )),
        IpNet::V6(n) => KeyData::V6(rule_key_v6(
            direction,
            length,
            scope,
            proto,
            port,
            n.network().octets(),
        )),
    };
    let mut latency = RuleSlot::default();
    let (action, ppm) = match rule.action {
        Action::Blackhole => (ACTION_BLACKHOLE, PPM_ALL),
        Action::Loss { ppm } | Action::Latency { ppm, .. } if ppm > PPM_ALL => {
            return Err(Error::Invalid(format!(
                "a probability of {ppm} ppm exceeds 1,000,000 (100 %)"
            )));
        }
        Action::Loss { ppm } => (ACTION_LOSS, ppm),
        Action::Latency { .. } if direction == Direction::Ingress => {
            return Err(Error::Invalid(
                "received packets cannot be delayed: latency is egress only".into(),
            ));
        }
        Action::Latency {
            delay_ns,
            jitter_ns,
            distribution,
            correlation,
            ppm,
            reorder,
        } => {
            latency.delay_ns = delay_ns;
            latency.jitter_ns = jitter_ns;
            latency.distribution = distribution.code();
            latency.correlation = correlation;
            latency.flags = if reorder { FLAG_REORDER } else { 0 };
            (ACTION_LATENCY, ppm)
        }
        Action::Bandwidth {
            bytes_per_sec: 0, ..
        } => {
            return Err(Error::Invalid("a bandwidth of 0 bytes/s".into()));
        }
        Action::Bandwidth {
            bytes_per_sec,
            burst_bytes,
        } => {
            latency.rate_bytes_per_sec = bytes_per_sec;
            latency.burst_bytes = burst_bytes;
            (ACTION_BANDWIDTH, PPM_ALL)
        }
        Action::Dns { .. } => {
            return Err(Error::Invalid(
                "the dns action needs a domain name match".into(),
            ));
        }
    };
    Ok(Compiled {
        key: MapKey {
            table,
            prefix_len: u32::from(length),
            data,
        },
        home: Home::Hash,
        slot: RuleSlot {
            action,
            prefix_len: net.prefix_len(),
            ppm,
            expires_at_ns: rule.expires_at_ns.unwrap_or(0),
            cgroup_id: scope,
            ..latency
        },
        index: Index::Ip {
            prefilter: prefilter_range(&net),
            shape: key_shape(proto, port),
            length,
            scope_level: rule.cgroup.map(|s| s.level),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(net: &str) -> Rule {
        Rule::blackhole(Direction::Egress, net.parse().unwrap())
    }

    fn ip_index(c: &Compiled) -> (RangeInclusive<u16>, u8, u8) {
        match &c.index {
            Index::Ip {
                prefilter,
                shape,
                length,
                ..
            } => (prefilter.clone(), *shape, *length),
            Index::Dns { .. } => panic!("an IP rule expected"),
        }
    }

    #[test]
    fn dns_rules_key_the_reversed_name_and_keep_the_resolver_in_the_value() {
        use super::super::DnsResponse;
        let c = compile(&Rule::dns("*.example.com", DnsResponse::ServFail).expiring_at(9)).unwrap();
        let KeyData::Dns(k) = &c.key.data else {
            panic!("a DNS key expected")
        };
        assert_eq!(&k[..], b".moc.elpmaxe.");
        assert_eq!((c.key.table, c.key.prefix_len), (Table::Dns, 13 * 8));
        assert_eq!(
            (c.slot.action, c.slot.ppm, c.slot.expires_at_ns),
            (ACTION_DNS, PPM_ALL, 9)
        );
        let [hash, check] = dns_hash(b".moc.elpmaxe.");
        assert_eq!(
            c.index,
            Index::Dns {
                rule: DnsRule {
                    check,
                    port: 53,
                    rcode: chaos_common::DNS_RCODE_SERVFAIL,
                    ..DnsRule::default()
                },
                hash,
                wildcard_labels: Some(2),
            }
        );
        let mut r = Rule::dns("api.example.com", DnsResponse::Drop);
        if let Match::Dns(m) = &mut r.matches {
            m.resolver = Some("10.0.0.0/8".parse().unwrap());
            m.port = 5353;
        }
        let Index::Dns {
            rule: v,
            wildcard_labels: None,
            ..
        } = compile(&r).unwrap().index
        else {
            panic!("an exact DNS index expected")
        };
        assert_eq!(
            (v.family, v.port, v.rcode),
            (4, 5353, chaos_common::DNS_DROP)
        );
        assert_eq!(
            (&v.net[..4], &v.mask[..4]),
            (&[10, 0, 0, 0][..], &[255, 0, 0, 0][..])
        );
        let ingress = Rule {
            direction: Direction::Ingress,
            ..Rule::dns("a.example", DnsResponse::Refused)
        };
        assert!(matches!(compile(&ingress), Err(Error::Invalid(_))));
        let wrong = rule("10.0.0.1/32").with_action(Action::Dns {
            response: DnsResponse::Refused,
            ppm: PPM_ALL,
        });
        assert!(matches!(compile(&wrong), Err(Error::Invalid(_))));
    }

    #[test]
    fn v4_key_masks_host_bits_and_carries_the_length() {
        let c = compile(&rule("10.0.3.77/24").on(Protocol::Tcp, Some(6379))).unwrap();
        assert_eq!(
            (c.key.table, c.key.map_name()),
            (Table::V4Egress, "RULES_V4")
        );
        assert_eq!(c.key.prefix_len, 24);
        assert_eq!(
            c.key.data,
            KeyData::V4([
                0, 24, 6, 0x18, 0xeb, 0, 0, 0, 10, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ])
        );
        assert_eq!(c.slot.prefix_len, 24);
        assert_eq!(c.slot.action, ACTION_BLACKHOLE);
        assert_eq!(c.slot.ppm, PPM_ALL);
        assert_eq!(
            ip_index(&c),
            (0x0a00..=0x0a00, chaos_common::SHAPE_PROTO_PORT, 24)
        );
    }

    #[test]
    fn v6_ingress_icmp_uses_icmpv6_number() {
        let c = compile(
            &Rule::blackhole(Direction::Ingress, "fd00:1::/64".parse().unwrap())
                .on(Protocol::Icmp, None),
        )
        .unwrap();
        assert_eq!(
            (c.key.table, c.key.map_name()),
            (Table::V6Ingress, "RULES_V6")
        );
        let KeyData::V6(k) = c.key.data else {
            panic!("v6 key expected")
        };
        assert_eq!(&k[..3], &[1, 64, IPPROTO_ICMPV6]);
        assert_eq!(
            ip_index(&c),
            (
                0xfd00 ^ 0x0001..=0xfd00 ^ 0x0001,
                chaos_common::SHAPE_PROTO_ANYPORT,
                64
            )
        );
    }

    #[test]
    fn prefilter_ranges_cover_every_bucket_a_net_can_hit() {
        let range = |net: &str| prefilter_range(&net.parse().unwrap());
        assert_eq!(range("10.0.0.0/8"), 0x0a00..=0x0aff);
        assert_eq!(range("0.0.0.0/0"), 0..=0xffff);
        assert_eq!(range("10.0.0.0/15"), 0x0a00..=0x0a01);
        assert_eq!(range("10.9.8.0/24"), 0x0a09..=0x0a09);
        assert_eq!(range("::/0"), 0..=0xffff);
        assert_eq!(range("2001:db8::/31"), 0..=0xffff);
        assert_eq!(range("2001:db8::/32"), 0..=0xffff);
        assert_eq!(range("2001:db8:700::/40"), {
            let b: u16 = (0x2001 ^ 0x0db8 ^ 0x0700) & !0xff;
            b..=b | 0xff
        });
        let one = 0x2001 ^ 0x0db8 ^ 0x0007;
        assert_eq!(range("2001:db8:7::/48"), one..=one);
        assert_eq!(range("2001:db8:7:1::9/128"), one..=one);
        // Every address of a /40 lands in its range (spot checks across the block).
        let net: ipnet::Ipv6Net = "2001:db8:7a00::/40".parse().unwrap();
        let r = prefilter_range(&IpNet::V6(net));
        for w2 in [0x7a00u16, 0x7a01, 0x7a80, 0x7aff] {
            let mut a = [0u8; 16];
            a[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, (w2 >> 8) as u8, w2 as u8]);
            assert!(r.contains(&chaos_common::prefilter_bucket(true, &a)));
        }
    }

    #[test]
    fn full_length_rules_are_one_more_length() {
        let c = compile(&rule("10.1.2.3/32").on(Protocol::Udp, Some(53))).unwrap();
        assert_eq!(
            c.key.data,
            KeyData::V4([
                0,
                32,
                IPPROTO_UDP,
                0,
                53,
                0,
                0,
                0,
                10,
                1,
                2,
                3,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0
            ])
        );
        assert_eq!(ip_index(&c).1, chaos_common::SHAPE_PROTO_PORT);
        let c = compile(&Rule::blackhole(
            Direction::Ingress,
            "fd00::7/128".parse().unwrap(),
        ))
        .unwrap();
        let KeyData::V6(k) = c.key.data else {
            panic!("v6 key expected")
        };
        assert_eq!((k[0], k[1], k[2]), (1, 128, 0));
        assert_eq!(c.key.table, Table::V6Ingress);
        assert_eq!(ip_index(&c).1, chaos_common::SHAPE_ANY);
        assert_eq!(ip_index(&c).2, 128);
    }

    #[test]
    fn loss_and_expiry_go_into_the_slot() {
        let c = compile(
            &rule("10.1.2.3/32")
                .with_action(Action::Loss { ppm: 300_000 })
                .expiring_at(42),
        )
        .unwrap();
        assert_eq!(
            (c.slot.action, c.slot.ppm, c.slot.expires_at_ns),
            (ACTION_LOSS, 300_000, 42)
        );
    }

    #[test]
    fn latency_goes_into_the_slot_on_egress_only() {
        let delay = Action::Latency {
            delay_ns: 50_000_000,
            jitter_ns: 5_000_000,
            distribution: crate::loader::Distribution::Normal,
            correlation: 1 << 31,
            ppm: PPM_ALL,
            reorder: true,
        };
        let c = compile(&rule("10.1.2.3/32").with_action(delay)).unwrap();
        assert_eq!(
            (c.slot.action, c.slot.delay_ns, c.slot.jitter_ns, c.slot.ppm),
            (ACTION_LATENCY, 50_000_000, 5_000_000, PPM_ALL)
        );
        assert_eq!(
            (c.slot.distribution, c.slot.correlation, c.slot.flags),
            (chaos_common::DIST_NORMAL, 1 << 31, FLAG_REORDER)
        );
        let ingress =
            Rule::blackhole(Direction::Ingress, "10.1.2.3/32".parse().unwrap()).with_action(delay);
        assert!(matches!(compile(&ingress), Err(Error::Invalid(_))));
    }

    #[test]
    fn bandwidth_goes_into_the_slot_in_both_directions() {
        let limit = Action::Bandwidth {
            bytes_per_sec: 1_250_000,
            burst_bytes: 65_536,
        };
        for direction in [Direction::Egress, Direction::Ingress] {
            let r = Rule::blackhole(direction, "10.1.2.3/32".parse().unwrap()).with_action(limit);
            let c = compile(&r).unwrap();
            assert_eq!(
                (c.slot.action, c.slot.rate_bytes_per_sec, c.slot.burst_bytes),
                (ACTION_BANDWIDTH, 1_250_000, 65_536)
            );
        }
        let zero = rule("10.1.2.3/32").with_action(Action::Bandwidth {
            bytes_per_sec: 0,
            burst_bytes: 1,
        });
        assert!(matches!(compile(&zero), Err(Error::Invalid(_))));
    }

    #[test]
    fn impossible_rules_are_refused() {
        let port_on_icmp = rule("10.0.0.1/32").on(Protocol::Icmp, Some(1));
        assert!(matches!(compile(&port_on_icmp), Err(Error::Invalid(_))));
        let port_zero = rule("10.0.0.1/32").on(Protocol::Any, Some(0));
        assert!(matches!(compile(&port_zero), Err(Error::Invalid(_))));
        let too_much = rule("10.0.0.1/32").with_action(Action::Loss { ppm: 1_000_001 });
        assert!(matches!(compile(&too_much), Err(Error::Invalid(_))));
        let scope = super::super::Scope { id: 7, level: 2 };
        let ingress = Rule::blackhole(Direction::Ingress, "10.0.0.1/32".parse().unwrap());
        assert!(matches!(
            compile(&ingress.scoped(scope)),
            Err(Error::Invalid(_))
        ));
        let root = super::super::Scope { id: 1, level: 0 };
        assert!(matches!(
            compile(&rule("10.0.0.1/32").scoped(root)),
            Err(Error::Invalid(_))
        ));
        let dns = Rule::dns("a.example", super::super::DnsResponse::Refused).scoped(scope);
        assert!(matches!(compile(&dns), Err(Error::Invalid(_))));
    }

    #[test]
    fn a_scope_goes_into_the_key_and_names_its_level() {
        let scope = super::super::Scope {
            id: 0x0102_0304,
            level: 3,
        };
        let c = compile(&rule("10.1.2.3/32").scoped(scope)).unwrap();
        let KeyData::V4(k) = c.key.data else {
            panic!("a v4 key expected")
        };
        assert_eq!(&k[8..], &[10, 1, 2, 3, 0, 0, 0, 0, 1, 2, 3, 4]);
        let unscoped = compile(&rule("10.1.2.3/32")).unwrap();
        assert_ne!(c.key, unscoped.key);
        let c = compile(&rule("10.1.0.0/16").scoped(scope)).unwrap();
        assert_eq!(c.slot.cgroup_id, 0x0102_0304);
        assert!(matches!(
            c.index,
            Index::Ip {
                scope_level: Some(3),
                ..
            }
        ));
    }
}
