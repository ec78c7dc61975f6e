//! Loading the embedded object and attaching its programs. Links are held by the loaded object and
//! never pinned: when the process exits (even by SIGKILL) the kernel detaches them.

use aya::{
    Ebpf,
    maps::ProgramArray,
    programs::{
        LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode,
        tc::{self, TcAttachOptions},
        xdp::XdpLinkId,
    },
};

use super::Error;
use crate::EBPF_OBJECT;

/// Name of the TC egress program in the object.
pub const EGRESS_PROGRAM: &str = "chaos_egress";
/// Name of the XDP ingress program in the object.
pub const INGRESS_PROGRAM: &str = "chaos_ingress";
/// Name of the DNS program the egress classifier tail-calls.
pub const DNS_PROGRAM: &str = "chaos_egress_dns";

/// Identifies an egress attachment, to detach it.
pub type EgressLink = tc::SchedClassifierLinkId;
/// Identifies an ingress attachment, to detach it.
pub type IngressLink = XdpLinkId;

/// Loads the object and the egress and ingress programs into the kernel (verifier runs here);
/// attaches nothing. The DNS program waits for [`load_dns`].
/// `log_level` is the programs' aya-log level (0 = off).
pub fn load(log_level: u8) -> Result<Ebpf, Error> {
    if EBPF_OBJECT.is_empty() {
        return Err(Error::Load(
            "this binary was built with AYA_BUILD_SKIP=1 and contains no eBPF object; rebuild without it"
                .into(),
        ));
    }
    let mut ebpf = aya::EbpfLoader::new()
        .override_global("AYA_LOG_LEVEL", &log_level, true)
        .load(EBPF_OBJECT)
        .map_err(|e| Error::from_bpf("loading the eBPF object", e, Error::Load))?;
    egress(&mut ebpf)?
        .load()
        .map_err(|e| Error::from_bpf("loading chaos_egress", e, Error::Load))?;
    ingress(&mut ebpf)?
        .load()
        .map_err(|e| Error::from_bpf("loading chaos_ingress", e, Error::Load))?;
    Ok(ebpf)
}

/// Loads the DNS program and puts it where the egress classifier tail-calls it. Done with the
/// first domain rule, not at start: verifying it takes ≈ 0.3 s (ten times the classifier), which
/// hosts that never use DNS faults should not wait for. Until then the tail call finds no
/// program and the classifier goes on by itself.
pub fn load_dns(ebpf: &mut Ebpf) -> Result<(), Error> {
    let program: &mut SchedClassifier = ebpf
        .program_mut(DNS_PROGRAM)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| Error::Load(format!("program {DNS_PROGRAM} missing").into()))?;
    program
        .load()
        .map_err(|e| Error::from_bpf("loading chaos_egress_dns", e, Error::Load))?;
    let fd = program
        .fd()
        .map_err(|e| Error::from_bpf("loading chaos_egress_dns", e, Error::Load))?
        .try_clone()
        .map_err(|e| Error::Load(Box::new(e)))?;
    let mut slots: ProgramArray<_> = ebpf
        .map_mut("DNS_PROGRAMS")
        .ok_or_else(|| Error::Load("map DNS_PROGRAMS missing from the eBPF object".into()))?
        .try_into()
        .map_err(|e| Error::Map {
            map: "DNS_PROGRAMS",
            source: e,
        })?;
    slots.set(0, &fd, 0).map_err(|e| Error::Map {
        map: "DNS_PROGRAMS",
        source: e,
    })
}

/// The TC egress program.
pub fn egress(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, Error> {
    ebpf.program_mut(EGRESS_PROGRAM)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| Error::Load(format!("program {EGRESS_PROGRAM} missing").into()))
}

/// The XDP ingress program.
pub fn ingress(ebpf: &mut Ebpf) -> Result<&mut Xdp, Error> {
    ebpf.program_mut(INGRESS_PROGRAM)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| Error::Load(format!("program {INGRESS_PROGRAM} missing").into()))
}

fn attach_error(
    program: &'static str,
    iface: &str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
    let iface = iface.to_string();
    move |source| Error::Attach {
        program,
        iface,
        source,
    }
}

/// How the egress classifier is attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TcAttach {
    /// A TCX link (kernel ≥ 6.6), falling back to a clsact netlink filter.
    #[default]
    Auto,
    /// Always a clsact netlink filter, as on kernels before 6.6. Such filters are not links: a
    /// crashed daemon leaves them behind (their rules still expire in the kernel at their TTL)
    /// until the next start or `chaos-daemon cleanup` removes them.
    Netlink,
}

/// Attaches the egress classifier to `iface` (in the caller's network namespace): a TCX link,
/// first in the chain, where the kernel has TCX; a clsact + netlink filter otherwise.
pub fn attach_egress(ebpf: &mut Ebpf, iface: &str, mode: TcAttach) -> Result<EgressLink, Error> {
    let prog = egress(ebpf)?;
    if mode == TcAttach::Auto {
        match prog.attach_with_options(
            iface,
            TcAttachType::Egress,
            TcAttachOptions::TcxOrder(LinkOrder::first()),
        ) {
            Ok(link) => return Ok(link),
            Err(e) => tracing::info!(iface, error = %e, "TCX attach failed; using a clsact filter"),
        }
    }
    if tc::qdisc_add_clsact(iface).is_err() {
        tracing::debug!(iface, "clsact qdisc already present");
    }
    prog.attach_with_options(
        iface,
        TcAttachType::Egress,
        TcAttachOptions::Netlink(tc::NlOptions::default()),
    )
    .map_err(|e| {
        Error::from_bpf(
            "attaching chaos_egress",
            e,
            attach_error(EGRESS_PROGRAM, iface),
        )
    })
}

/// Removes clsact egress filters running our classifier from `iface`: what a crashed daemon
/// leaves behind on the netlink path (TCX and XDP links never outlive their owner). Returns
/// whether any were found.
pub fn remove_stale_filters(iface: &str) -> Result<bool, Error> {
    match tc::qdisc_detach_program(iface, TcAttachType::Egress, EGRESS_PROGRAM) {
        Ok(()) => Ok(true),
        Err(tc::TcError::IoError(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::from_bpf(
            "removing stale filters",
            e,
            attach_error(EGRESS_PROGRAM, iface),
        )),
    }
}

/// How the XDP ingress program is attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpAttach {
    /// The driver's native mode where it has one, generic (SKB) mode otherwise.
    #[default]
    Auto,
    /// Generic mode only: never touches the NIC driver (some drivers briefly reset the link
    /// when their first native XDP program is attached).
    Generic,
    /// Native mode only; fails on drivers without XDP support.
    Native,
}

/// How both programs are attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// Egress classifier.
    pub tc: TcAttach,
    /// Ingress XDP program.
    pub xdp: XdpAttach,
}

/// Attaches the XDP program to `iface` in the given mode.
pub fn attach_ingress(ebpf: &mut Ebpf, iface: &str, mode: XdpAttach) -> Result<IngressLink, Error> {
    let prog = ingress(ebpf)?;
    let result = match mode {
        XdpAttach::Auto => prog
            .attach(iface, XdpMode::Default)
            .or_else(|_| prog.attach(iface, XdpMode::Skb)),
        XdpAttach::Generic => prog.attach(iface, XdpMode::Skb),
        XdpAttach::Native => prog.attach(iface, XdpMode::Driver),
    };
    result.map_err(|e| {
        Error::from_bpf(
            "attaching chaos_ingress",
            e,
            attach_error(INGRESS_PROGRAM, iface),
        )
    })
}
