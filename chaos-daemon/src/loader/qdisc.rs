//! The root qdisc latency needs: `fq` honours the departure times the egress program stamps
//! (EDT); any other qdisc sends the packet at once, silently without the delay. Over netlink
//! (NETLINK_ROUTE), never a `tc` shell-out.
//!
//! Only a kernel default is ever replaced: no root qdisc, `noqueue`, `pfifo_fast`, `fq_codel` (then
//! fq becomes the root, and restoring is deleting it, after which the kernel attaches its default
//! again), or `mq` whose per-queue children are all of one default kind, `pfifo_fast` or
//! `fq_codel` (then each child becomes an fq, so the queues stay independent, and restoring puts
//! a fresh `mq` back, whose children the kernel creates with its default kind). An operator's own
//! `htb`, `netem` or mixed `mq` children are refused rather than lost.

use std::{io, time::Duration};

use netlink_packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcHandle, TcMessage, TcOption},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Single root qdiscs the kernel installs by itself: replacing them loses nothing.
const DEFAULT_KINDS: &[&str] = &["noqueue", "pfifo_fast", "fq_codel"];

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

/// One qdisc of a device: where it hangs, its handle and kind.
#[derive(Clone, Debug)]
struct Qdisc {
    parent: TcHandle,
    handle: TcHandle,
    kind: String,
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
                Some(Qdisc {
                    parent: q.header.parent,
                    handle: q.header.handle,
                    kind: q.attributes.into_iter().find_map(|a| match a {
                        TcAttribute::Kind(k) => Some(k),
                        _ => None,
                    })?,
                })
            }
            _ => None,
        })
        .collect())
}

/// The kind of `ifindex`'s root qdisc (`None`: none at all).
pub fn root_kind(ifindex: u32) -> io::Result<Option<String>> {
    Ok(qdiscs(ifindex)?
        .into_iter()
        .find(|q| q.parent == TcHandle::ROOT)
        .map(|q| q.kind))
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

/// Kinds the kernel gives the per-queue children of an `mq` (its built-in default, or
/// `net.core.default_qdisc`).
const DEFAULT_CHILD_KINDS: &[&str] = &["pfifo_fast", "fq_codel"];

/// Why fq cannot go on a device, or how it went.
#[derive(Debug, thiserror::Error)]
pub enum QdiscError {
    /// The device has a root qdisc an operator chose; replacing it would lose it.
    #[error(
        "interface has its own root qdisc {0:?}; latency and bandwidth need fq and chaos-daemon replaces only kernel defaults (noqueue, pfifo_fast, fq_codel, or mq with default children)"
    )]
    Custom(String),
    /// Netlink refused (no `sch_fq` in this kernel: ENOENT).
    #[error("installing the fq qdisc failed: {0}")]
    Netlink(#[from] io::Error),
}

/// Puts `fq` where the device's packets are queued, with a horizon beyond `longest` delay: as
/// the root, or on every queue under a default `mq`. Returns false if fq was already there
/// (then it is not ours to remove).
pub fn install_fq(ifindex: u32, longest: Duration) -> Result<bool, QdiscError> {
    if let Some((root, children)) = mq_children(ifindex)? {
        if children.is_empty() {
            return Err(QdiscError::Custom("mq without per-queue qdiscs".into()));
        }
        if children.iter().all(|c| c.kind == "fq") {
            return Ok(false);
        }
        let kinds: std::collections::BTreeSet<&str> = children
            .iter()
            .map(|c| c.kind.as_str())
            .filter(|k| *k != "fq")
            .collect();
        if kinds.len() > 1 || kinds.iter().any(|k| !DEFAULT_CHILD_KINDS.contains(k)) {
            return Err(QdiscError::Custom(format!(
                "mq with per-queue {}",
                kinds.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        for child in children.iter().filter(|c| c.kind != "fq") {
            if let Err(e) = put_fq(ifindex, child.parent, longest) {
                // A half-converted mq is undone at once: back to the default children.
                let _ = restore_mq(ifindex, root);
                return Err(e.into());
            }
        }
        return Ok(true);
    }
    match root_kind(ifindex)? {
        Some(k) if k == "fq" => return Ok(false),
        Some(k) if !DEFAULT_KINDS.contains(&k.as_str()) => return Err(QdiscError::Custom(k)),
        _ => {}
    }
    put_fq(ifindex, TcHandle::ROOT, longest)?;
    Ok(true)
}

/// Creates or replaces the qdisc at `parent` with an fq.
fn put_fq(ifindex: u32, parent: TcHandle, longest: Duration) -> io::Result<()> {
    let horizon_us =
        u32::try_from((longest + Duration::from_secs(1)).as_micros()).unwrap_or(u32::MAX);
    let mut msg = root_message(ifindex);
    msg.header.parent = parent;
    msg.attributes.push(TcAttribute::Kind("fq".into()));
    msg.attributes.push(TcAttribute::Options(vec![
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
    ]));
    request(
        RouteNetlinkMessage::NewQueueDiscipline(msg),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
    )?;
    Ok(())
}

/// Replaces the root `mq` (handle `root`) by a fresh one, whose children the kernel creates
/// with the default kind: what the device had before fq went on its queues.
fn restore_mq(ifindex: u32, root: TcHandle) -> io::Result<()> {
    let mut msg = root_message(ifindex);
    msg.header.handle = root;
    msg.attributes.push(TcAttribute::Kind("mq".into()));
    // Deleting first: replacing an mq by an mq would keep its children.
    request(
        RouteNetlinkMessage::DelQueueDiscipline(root_message(ifindex)),
        NLM_F_REQUEST | NLM_F_ACK,
    )?;
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

/// Removes the fq on `ifindex` (a root fq, or fq on every queue of an mq) and puts back what
/// the kernel would have there. Returns whether anything was removed.
pub fn remove_fq(ifindex: u32) -> io::Result<bool> {
    if let Some((root, children)) = mq_children(ifindex)? {
        // Ours: some queue has fq and the rest (if a crash cut an install short) a default.
        let ours = children.iter().any(|c| c.kind == "fq")
            && children
                .iter()
                .all(|c| c.kind == "fq" || DEFAULT_CHILD_KINDS.contains(&c.kind.as_str()));
        if !ours {
            return Ok(false);
        }
        restore_mq(ifindex, root)?;
        return Ok(true);
    }
    if root_kind(ifindex)?.as_deref() != Some("fq") {
        return Ok(false);
    }
    request(
        RouteNetlinkMessage::DelQueueDiscipline(root_message(ifindex)),
        NLM_F_REQUEST | NLM_F_ACK,
    )?;
    Ok(true)
}

/// Whether this kernel can run `fq`, measured: installing it on the loopback device of a
/// private network namespace (a module that loads on demand is found only by trying).
pub fn fq_available() -> bool {
    std::thread::spawn(|| {
        // This thread alone moves to a new network namespace, which dies with it.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_ok()
            && nix::net::if_::if_nametoindex("lo")
                .ok()
                .is_some_and(|lo| install_fq(lo, Duration::from_secs(1)).is_ok())
    })
    .join()
    .unwrap_or(false)
}
