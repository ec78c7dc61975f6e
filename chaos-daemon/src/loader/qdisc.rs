//! The root qdisc latency needs: `fq` honours the departure times the egress program stamps
//! (EDT); any other qdisc sends the packet at once, silently without the delay. Over netlink
//! (NETLINK_ROUTE), never a `tc` shell-out.
//!
//! Only a kernel default is ever replaced (no root qdisc, `noqueue`, `pfifo_fast`, `fq_codel`,
//! `mq`): an operator's own `htb` or `netem` is refused rather than lost, and restoring is then
//! just deleting our root `fq`, after which the kernel attaches its default again.

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

/// Root qdiscs the kernel installs by itself: replacing them loses nothing.
const DEFAULT_KINDS: &[&str] = &["noqueue", "pfifo_fast", "fq_codel", "mq"];

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

/// The kind of `ifindex`'s root qdisc (`None`: none at all).
pub fn root_kind(ifindex: u32) -> io::Result<Option<String>> {
    let all = request(
        RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
    )?;
    Ok(all.into_iter().find_map(|m| match m {
        RouteNetlinkMessage::NewQueueDiscipline(q)
            if q.header.index == ifindex as i32 && q.header.parent == TcHandle::ROOT =>
        {
            q.attributes.into_iter().find_map(|a| match a {
                TcAttribute::Kind(k) => Some(k),
                _ => None,
            })
        }
        _ => None,
    }))
}

/// Why fq cannot go on a device, or how it went.
#[derive(Debug, thiserror::Error)]
pub enum QdiscError {
    /// The device has a root qdisc an operator chose; replacing it would lose it.
    #[error(
        "interface has its own root qdisc {0:?}; latency needs fq as the root qdisc and chaos-daemon replaces only kernel defaults (noqueue, pfifo_fast, fq_codel, mq)"
    )]
    Custom(String),
    /// Netlink refused (no `sch_fq` in this kernel: ENOENT).
    #[error("installing the fq qdisc failed: {0}")]
    Netlink(#[from] io::Error),
}

/// Makes `fq` the root qdisc of `ifindex`, with a horizon beyond `longest` delay. Returns
/// false if fq was already the root (then it is not ours to remove).
pub fn install_fq(ifindex: u32, longest: Duration) -> Result<bool, QdiscError> {
    match root_kind(ifindex)? {
        Some(k) if k == "fq" => return Ok(false),
        Some(k) if !DEFAULT_KINDS.contains(&k.as_str()) => return Err(QdiscError::Custom(k)),
        _ => {}
    }
    let horizon_us =
        u32::try_from((longest + Duration::from_secs(1)).as_micros()).unwrap_or(u32::MAX);
    let mut msg = root_message(ifindex);
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
    Ok(true)
}

/// Removes `ifindex`'s root qdisc if it is fq; the kernel attaches its default again.
/// Returns whether one was removed.
pub fn remove_fq(ifindex: u32) -> io::Result<bool> {
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
