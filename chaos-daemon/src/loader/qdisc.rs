//! The qdisc tree latency needs, over netlink (NETLINK_ROUTE), never a `tc` shell-out:
//!
//! ```text
//! prio, 2 bands; priomap: PRIORITY_DELAYED -> band 2, every other priority -> band 1
//! ├─ 1: fq                         traffic no rule delays (and bandwidth pacing: fq honours EDT)
//! └─ 2: netem, 64 ns, no loss
//!       └─ fq                      delayed packets, held to the departure time the program stamps
//! ```
//!
//! `fq` honours the departure times the egress program stamps (EDT); any other qdisc sends the
//! packet at once. But a packet fq holds stays charged to its socket: TCP Small Queues lets a
//! socket keep about a millisecond of its pacing rate below it, and a UDP socket its send buffer,
//! so a bulk sender behind a 50 ms delay stalls at a few packets per delay (measured in the 6.12
//! VM: 0.9 Mbit/s of TCP where netem's 50 ms gives 460). netem orphans what it delays
//! (`skb_orphan_partial` on enqueue), and its smallest delay does that too: the delayed band
//! passes through a 64 ns netem before the fq that holds it, so it is held like netem holds it
//! (439 Mbit/s in the same run) while the delay, its jitter and its order stay ours. Traffic no
//! rule delays never meets netem: its sockets keep their back-pressure.
//!
//! Only a kernel default with the kernel's parameters is ever replaced: no root qdisc,
//! `noqueue`, `pfifo_fast`, `fq_codel` or `fq` (then the tree becomes the root, and restoring is
//! deleting it, after which the kernel attaches its default again, or putting the kind back
//! where the kernel would attach another), or `mq` whose per-queue children are all of one
//! default kind (then each child becomes a tree, so the queues stay independent, and restoring
//! puts a fresh `mq` back, whose children the kernel creates with its default kind). An
//! operator's own `htb` or `netem`, mixed `mq` children, or a default kind tuned away from the
//! kernel's parameters (an `fq` with a 10-packet flow limit, an `fq_codel` with `limit 77`) are
//! refused rather than lost or used: an `fq` of the kernel's, with its 10 s horizon, would drop
//! what a longer delay holds.

use std::{io, time::Duration};

use chaos_common::PRIORITY_DELAYED;
use netlink_packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcHandle, TcMessage, TcOption, TcQdiscFqCodelOption},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Single root qdiscs the kernel installs by itself (`fq` where `net.core.default_qdisc` says
/// so): replacing them, with the kernel's parameters, loses nothing.
const DEFAULT_KINDS: &[&str] = &["noqueue", "pfifo_fast", "fq_codel", "fq"];

// TCA_FQ_* attributes (linux/pkt_sched.h).
const TCA_FQ_PLIMIT: u16 = 1;
const TCA_FQ_FLOW_PLIMIT: u16 = 2;
const TCA_FQ_HORIZON: u16 = 14;
const TCA_FQ_HORIZON_DROP: u16 = 15;

/// Packets fq may hold in all: a delayed bulk flow queues delay × rate worth of them.
const FQ_LIMIT: u32 = 100_000;
/// Packets per flow (fq's default of 100 drops a flow delayed by 100 ms at 2000 pkt/s).
const FQ_FLOW_LIMIT: u32 = 20_000;

/// Sends one request and collects the answers up to the ack or the end of a dump.
fn request(msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut packet = NetlinkMessage::new(header, msg.into());
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut out = Vec::new();
    let mut rx = vec![0u8; 64 * 1024];
    loop {
        let size = socket.recv(&mut &mut rx[..], 0)?;
        let mut offset = 0;
        while offset < size {
            let msg = <NetlinkMessage<RouteNetlinkMessage>>::deserialize(&rx[offset..size])
                .map_err(|e| io::Error::other(e.to_string()))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(out),
                        Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                    };
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

fn root_message(ifindex: u32) -> TcMessage {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = TcHandle::ROOT;
    msg
}

/// One qdisc of a device: where it hangs, its handle, kind and the parameters an operator may
/// have tuned (fq_codel's, but for its quantum, which follows the device's MTU).
#[derive(Clone, Debug)]
struct Qdisc {
    parent: TcHandle,
    handle: TcHandle,
    kind: String,
    tuned: Vec<String>,
}

/// Whether option `o` follows the device's MTU (fq_codel's quantum): it differs between
/// devices at the kernel's defaults, so it is not compared.
fn mtu_bound(o: &TcOption) -> bool {
    matches!(o, TcOption::FqCodel(TcQdiscFqCodelOption::Quantum(_)))
}

/// The nested attributes of an options blob the crate does not parse (fq's), as
/// `name=value`, without the MTU-bound quantum and initial quantum.
fn fq_options(nla: &DefaultNla) -> Vec<String> {
    const NAMES: [&str; 18] = [
        "unspec",
        "limit",
        "flow_limit",
        "quantum",
        "initial_quantum",
        "rate_enable",
        "flow_default_rate",
        "flow_max_rate",
        "buckets_log",
        "flow_refill_delay",
        "orphan_mask",
        "low_rate_threshold",
        "ce_threshold",
        "timer_slack",
        "horizon",
        "horizon_drop",
        "priomap",
        "weights",
    ];
    let mut bytes = vec![0u8; netlink_packet_core::Nla::value_len(nla)];
    netlink_packet_core::Nla::emit_value(nla, &mut bytes);
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = u16::from_ne_bytes([bytes[at], bytes[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([bytes[at + 2], bytes[at + 3]]) as usize & 0x3fff;
        if len < 4 || at + len > bytes.len() {
            break;
        }
        let value = &bytes[at + 4..at + len];
        if !matches!(kind, 3 | 4) {
            let name = NAMES.get(kind).copied().unwrap_or("option");
            out.push(match value {
                [a, b, c, d] => format!("{name} {}", u32::from_ne_bytes([*a, *b, *c, *d])),
                v => format!("{name} {v:02x?}"),
            });
        }
        at += len.div_ceil(4) * 4;
    }
    out
}

/// Every qdisc of `ifindex`.
fn qdiscs(ifindex: u32) -> io::Result<Vec<Qdisc>> {
    let all = request(
        RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
    )?;
    Ok(all
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewQueueDiscipline(q) if q.header.index == ifindex as i32 => {
                let mut kind = None;
                let mut tuned = Vec::new();
                for a in q.attributes {
                    match a {
                        TcAttribute::Kind(k) => kind = Some(k),
                        TcAttribute::Options(opts) => {
                            for o in &opts {
                                match o {
                                    // Kinds the crate does not know come as one blob.
                                    TcOption::Other(nla) => tuned.extend(fq_options(nla)),
                                    o if !mtu_bound(o) => tuned.push(format!("{o:?}")),
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Some(Qdisc {
                    parent: q.header.parent,
                    handle: q.header.handle,
                    kind: kind?,
                    tuned,
                })
            }
            _ => None,
        })
        .collect())
}

/// The kind of `ifindex`'s root qdisc (`None`: none at all).
pub fn root_kind(ifindex: u32) -> io::Result<Option<String>> {
    Ok(root(ifindex)?.map(|q| q.kind))
}

/// The root qdisc of `ifindex` (`None`: none at all).
fn root(ifindex: u32) -> io::Result<Option<Qdisc>> {
    Ok(qdiscs(ifindex)?
        .into_iter()
        .find(|q| q.parent == TcHandle::ROOT))
}

/// The root `mq` of `ifindex` and its per-queue children, if the root is `mq`.
fn mq_children(ifindex: u32) -> io::Result<Option<(TcHandle, Vec<Qdisc>)>> {
    let all = qdiscs(ifindex)?;
    let Some(root) = all
        .iter()
        .find(|q| q.parent == TcHandle::ROOT && q.kind == "mq")
    else {
        return Ok(None);
    };
    let major = root.handle.major;
    let children = all
        .iter()
        .filter(|q| q.parent != TcHandle::ROOT && q.parent.major == major)
        .cloned()
        .collect();
    Ok(Some((root.handle, children)))
}

/// Whether `q` is a default kind with the kernel's own parameters: an operator's tuned
/// `fq_codel` (`limit 77 target 20ms`) would be lost, since what the kernel puts back has its
/// defaults. The defaults are measured once, on a fresh fq_codel in a private namespace.
fn untuned(q: &Qdisc) -> bool {
    tuned_away(q).is_empty()
}

/// The parameters of `q` that are not the kernel's defaults (all of them when the defaults
/// cannot be measured: refusing is the safe side); empty for kinds without parameters.
fn tuned_away(q: &Qdisc) -> Vec<String> {
    type Defaults = std::sync::OnceLock<Option<Vec<String>>>;
    static FQ_CODEL: Defaults = Defaults::new();
    static FQ: Defaults = Defaults::new();
    let cell = match q.kind.as_str() {
        "fq_codel" => &FQ_CODEL,
        "fq" => &FQ,
        _ => return Vec::new(),
    };
    let kind = q.kind.clone();
    let defaults = cell.get_or_init(move || {
        on_private_lo(move |lo| {
            put(
                lo,
                TcHandle::ROOT,
                TcHandle { major: 0, minor: 0 },
                &kind,
                TcAttribute::Options(Vec::new()),
            )
            .ok()?;
            Some(root(lo).ok()??.tuned)
        })
    });
    match defaults {
        Some(d) if *d == q.tuned => Vec::new(),
        Some(d) => q.tuned.iter().filter(|o| !d.contains(o)).cloned().collect(),
        None => vec!["the kernel's defaults could not be measured".into()],
    }
}

/// Kinds the kernel gives the per-queue children of an `mq` (its built-in default, or
/// `net.core.default_qdisc`).
const DEFAULT_CHILD_KINDS: &[&str] = &["pfifo_fast", "fq_codel", "fq"];

/// Why the tree cannot go on a device, or how it went.
#[derive(Debug, thiserror::Error)]
pub enum QdiscError {
    /// The device has a root qdisc an operator chose; replacing it would lose it.
    #[error(
        "interface has its own root qdisc {0:?}; latency and bandwidth need fq and chaos-daemon replaces only kernel defaults with the kernel's parameters (noqueue, pfifo_fast, fq_codel, fq, or mq with such children)"
    )]
    Custom(String),
    /// Netlink refused (a kernel without `sch_fq`, `sch_prio` or `sch_netem`: ENOENT).
    #[error("installing the fq qdisc tree failed: {0}")]
    Netlink(#[from] io::Error),
}

/// First handle major of our trees: tree `i` (0 at the root, the queue number under an `mq`)
/// has its prio at `TREE_MAJOR + 2i` and its netem at `+ 1`. Below the kernel's automatic
/// handles (0x8000 on), above what operators type.
const TREE_MAJOR: u16 = 0x4000;
/// One past the last major a tree may use.
const TREE_MAJOR_END: u16 = 0x8000;

/// Whether `q` is the top of one of our trees.
fn is_tree(q: &Qdisc) -> bool {
    q.kind == "prio" && (TREE_MAJOR..TREE_MAJOR_END).contains(&q.handle.major)
}

/// Whether `q` is a qdisc that holds departure times for us: our tree, or an fq (an earlier
/// version's, or an operator's).
fn holds_edt(q: &Qdisc) -> bool {
    q.kind == "fq" || is_tree(q)
}

/// Puts the tree where the device's packets are queued, with fq horizons beyond `longest`
/// delay: as the root, or on every queue under a default `mq`. Returns false if a tree or an fq
/// was already there (then it is not ours to remove).
pub fn install_fq(ifindex: u32, longest: Duration) -> Result<bool, QdiscError> {
    if let Some((root, children)) = mq_children(ifindex)? {
        if children.is_empty() {
            return Err(QdiscError::Custom("mq without per-queue qdiscs".into()));
        }
        if children.iter().all(is_tree) {
            return Ok(false);
        }
        // A crash may have cut an install short: trees on some queues, defaults on the rest.
        let kinds: std::collections::BTreeSet<&str> = children
            .iter()
            .filter(|c| !is_tree(c))
            .map(|c| c.kind.as_str())
            .collect();
        if kinds.len() > 1 || kinds.iter().any(|k| !DEFAULT_CHILD_KINDS.contains(k)) {
            return Err(QdiscError::Custom(format!(
                "mq with per-queue {}",
                kinds.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        if let Some(c) = children.iter().find(|c| !is_tree(c) && !untuned(c)) {
            return Err(QdiscError::Custom(format!(
                "mq with per-queue {} tuned away from the kernel's defaults ({})",
                c.kind,
                tuned_away(c).join(", ")
            )));
        }
        for child in children.iter().filter(|c| !is_tree(c)) {
            if let Err(e) = put_tree(ifindex, child.parent, child.parent.minor, longest) {
                // A half-converted mq is undone at once: back to the default children.
                let _ = restore_mq(ifindex, root);
                return Err(e.into());
            }
        }
        return Ok(true);
    }
    match root(ifindex)? {
        Some(q) if is_tree(&q) => return Ok(false),
        Some(q) if !DEFAULT_KINDS.contains(&q.kind.as_str()) => {
            return Err(QdiscError::Custom(q.kind));
        }
        Some(q) if !untuned(&q) => {
            return Err(QdiscError::Custom(format!(
                "{} tuned away from the kernel's defaults ({})",
                q.kind,
                tuned_away(&q).join(", ")
            )));
        }
        _ => {}
    }
    if let Err(e) = put_tree(ifindex, TcHandle::ROOT, 0, longest) {
        // Whatever part went in comes out: the kernel attaches its default again.
        if root(ifindex).is_ok_and(|q| q.is_some_and(|q| is_tree(&q))) {
            let _ = delete_root(ifindex);
        }
        return Err(e.into());
    }
    Ok(true)
}

/// Creates or replaces the qdisc at `parent` with tree number `index` (see [`TREE_MAJOR`]).
fn put_tree(ifindex: u32, parent: TcHandle, index: u16, longest: Duration) -> io::Result<()> {
    let prio = TREE_MAJOR
        .checked_add(index.saturating_mul(2))
        .filter(|m| *m < TREE_MAJOR_END - 1)
        .ok_or_else(|| io::Error::other(format!("too many TX queues ({index})")))?;
    let netem = prio + 1;
    let mut priomap = [0u8; 16];
    priomap[PRIORITY_DELAYED as usize] = 1;
    // struct tc_prio_qopt { int bands; __u8 priomap[TC_PRIO_MAX + 1]; }
    let mut qopt = 2i32.to_ne_bytes().to_vec();
    qopt.extend_from_slice(&priomap);
    put(
        ifindex,
        parent,
        TcHandle {
            major: prio,
            minor: 0,
        },
        "prio",
        raw_options(qopt),
    )?;
    put_fq(
        ifindex,
        TcHandle {
            major: prio,
            minor: 1,
        },
        longest,
    )?;
    // struct tc_netem_qopt { latency (ticks of 64 ns), limit, loss, gap, duplicate, jitter }
    let qopt: Vec<u8> = [1u32, NETEM_LIMIT, 0, 0, 0, 0]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    put(
        ifindex,
        TcHandle {
            major: prio,
            minor: 2,
        },
        TcHandle {
            major: netem,
            minor: 0,
        },
        "netem",
        raw_options(qopt),
    )?;
    put_fq(
        ifindex,
        TcHandle {
            major: netem,
            minor: 1,
        },
        longest,
    )
}

/// Packets netem may hold: a delayed packet spends only its 64 ns there before the fq below.
const NETEM_LIMIT: u32 = 100_000;

/// A qdisc's options as the raw struct its kind reads (prio and netem are not nested NLAs).
fn raw_options(bytes: Vec<u8>) -> TcAttribute {
    TcAttribute::Other(DefaultNla::new(TCA_OPTIONS, bytes))
}

/// `TCA_OPTIONS` (linux/rtnetlink.h).
const TCA_OPTIONS: u16 = 2;

/// Creates or replaces the qdisc at `parent` (handle `handle`, 0: the kernel picks one).
fn put(
    ifindex: u32,
    parent: TcHandle,
    handle: TcHandle,
    kind: &str,
    options: TcAttribute,
) -> io::Result<()> {
    let mut msg = root_message(ifindex);
    msg.header.parent = parent;
    msg.header.handle = handle;
    msg.attributes.push(TcAttribute::Kind(kind.into()));
    msg.attributes.push(options);
    request(
        RouteNetlinkMessage::NewQueueDiscipline(msg),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    )?;
    Ok(())
}

/// Creates or replaces the qdisc at `parent` with an fq.
fn put_fq(ifindex: u32, parent: TcHandle, longest: Duration) -> io::Result<()> {
    let horizon_us =
        u32::try_from((longest + Duration::from_secs(1)).as_micros()).unwrap_or(u32::MAX);
    let options = TcAttribute::Options(vec![
        TcOption::Other(DefaultNla::new(
            TCA_FQ_PLIMIT,
            FQ_LIMIT.to_ne_bytes().to_vec(),
        )),
        TcOption::Other(DefaultNla::new(
            TCA_FQ_FLOW_PLIMIT,
            FQ_FLOW_LIMIT.to_ne_bytes().to_vec(),
        )),
        TcOption::Other(DefaultNla::new(
            TCA_FQ_HORIZON,
            horizon_us.to_ne_bytes().to_vec(),
        )),
        // Beyond the horizon: drop (the program never stamps that far).
        TcOption::Other(DefaultNla::new(TCA_FQ_HORIZON_DROP, vec![1])),
    ]);
    put(ifindex, parent, TcHandle::UNSPEC, "fq", options)
}

/// Deletes the root qdisc of `ifindex`; the kernel attaches its default.
fn delete_root(ifindex: u32) -> io::Result<()> {
    request(
        RouteNetlinkMessage::DelQueueDiscipline(root_message(ifindex)),
        NLM_F_REQUEST | NLM_F_ACK,
    )?;
    Ok(())
}

/// Replaces the root `mq` (handle `root`) by a fresh one, whose children the kernel creates
/// with the default kind: what the device had before the trees went on its queues.
fn restore_mq(ifindex: u32, root: TcHandle) -> io::Result<()> {
    let mut msg = root_message(ifindex);
    msg.header.handle = root;
    msg.attributes.push(TcAttribute::Kind("mq".into()));
    // Deleting first: replacing an mq by an mq would keep its children.
    delete_root(ifindex)?;
    // A multi-queue NIC gets its default mq back by itself; a device whose default is
    // noqueue (veth) needs it added again.
    if root_kind(ifindex)?.as_deref() != Some("mq") {
        request(
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )?;
    }
    Ok(())
}

/// Removes our trees on `ifindex`, at the root or on every queue of an mq, and puts back what
/// was there: what the kernel attaches by itself, or `replaced` (the root kind the tree took
/// the place of, with the kernel's parameters) where the kernel attaches something else (an
/// `fq_codel` an operator added to a veth, whose own default is noqueue). Returns whether
/// anything was removed. Only a tree (known by its handles) is ever removed: an fq or any other
/// qdisc an operator put there stays.
pub fn remove_fq(ifindex: u32, replaced: Option<&str>) -> io::Result<bool> {
    if let Some((root, children)) = mq_children(ifindex)? {
        // Ours: some queue has a tree and the rest (if a crash cut an install short) a default.
        let ours = children.iter().any(is_tree)
            && children
                .iter()
                .all(|c| is_tree(c) || DEFAULT_CHILD_KINDS.contains(&c.kind.as_str()));
        if !ours {
            return Ok(false);
        }
        restore_mq(ifindex, root)?;
        return Ok(true);
    }
    if !root(ifindex)?.is_some_and(|q| is_tree(&q)) {
        return Ok(false);
    }
    delete_root(ifindex)?;
    if let Some(kind) = replaced.filter(|k| *k != "noqueue")
        && root_kind(ifindex)?.as_deref() != Some(kind)
    {
        put(
            ifindex,
            TcHandle::ROOT,
            TcHandle { major: 0, minor: 0 },
            kind,
            TcAttribute::Options(Vec::new()),
        )?;
    }
    Ok(true)
}

/// Whether departure times are still honoured on `ifindex`: its root is our tree or an fq, or
/// an mq whose every queue has one. False once an operator deleted or replaced it.
pub fn holds_departures(ifindex: u32) -> io::Result<bool> {
    if let Some((_, children)) = mq_children(ifindex)? {
        return Ok(!children.is_empty() && children.iter().all(holds_edt));
    }
    Ok(root(ifindex)?.is_some_and(|q| holds_edt(&q)))
}

/// Whether this kernel can run the tree (`sch_fq`, `sch_prio`, `sch_netem`), measured:
/// installing it on the loopback device of a private network namespace (a module that loads on
/// demand is found only by trying).
pub fn fq_available() -> bool {
    on_private_lo(|lo| install_fq(lo, Duration::from_secs(1)).ok()).is_some()
}

/// Runs `f` with the loopback device of a network namespace of its own (`None` if there is
/// none to be had): what the kernel can do, or does by default, measured where nothing else is
/// touched. A thread alone moves to the namespace, which dies with it.
fn on_private_lo<T: Send + 'static>(
    f: impl FnOnce(u32) -> Option<T> + Send + 'static,
) -> Option<T> {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        f(nix::net::if_::if_nametoindex("lo").ok()?)
    })
    .join()
    .ok()
    .flatten()
}
