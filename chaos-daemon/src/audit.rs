//! The audit trail: one line (target `audit`) per change to the fault table, per experiment
//! start and end, *and* per refused attempt, with structured fields a reviewer can filter on:
//! `action`, `result` (`ok` or `refused` with `status`, `error`, `field`), the fault's `id`,
//! `name`, `kind`, `does` (what it does: "delay 50ms", "servfail for db.example"), `was` (an
//! update's previous `does` and ttl), `percent` (the action's own), `share` (of matching
//! packets), `effective_percent`, `direction`, `match`, `interface`, `ttl`, `forced` (a
//! protection was overridden), an experiment's end `state` and `reason`, and the caller:
//! `caller` (`client` or `daemon`), `uid`, `gid`, `pid`, `process`, `experiment` (the
//! experiment acting for the client). Strings are written quoted and
//! escaped (logfmt in the text format, JSON strings in the JSON one), so no value can forge a
//! field. Every change goes through [`record`], every refusal through [`refused`] (an
//! experiment's through [`refused_experiment`]).

use std::{
    cell::RefCell,
    fmt,
    io::{self, Write},
};

use crate::spec::FaultSpec;

/// Held log output is written out once it reaches this size, so a held request's memory stays
/// bounded and a crash loses at most this much of it.
const HOLD_LIMIT: usize = 256 * 1024;

thread_local! {
    /// Log lines of this thread held back by a [`Hold`].
    static HELD: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// While alive, this thread's log lines (the audit lines of a request's faults) are collected
/// and written in a few large writes instead of one `write(2)` each: 100,000 faults created
/// or removed in one request would otherwise spend a third of their time in the log file.
/// Lines keep their order and timestamps; nested holds are one.
pub struct Hold {
    owner: bool,
}

impl Hold {
    /// Holds this thread's log lines until the guard is dropped.
    pub fn start() -> Hold {
        let owner = HELD.with_borrow_mut(|held| {
            let owner = held.is_none();
            if owner {
                *held = Some(Vec::new());
            }
            owner
        });
        Hold { owner }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.owner
            && let Some(lines) = HELD.with_borrow_mut(Option::take)
        {
            let _ = io::stderr().write_all(&lines);
        }
    }
}

/// The daemon's log output: stderr, through this thread's [`Hold`] if it has one.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let spill = HELD.with_borrow_mut(|held| {
            let lines = held.as_mut()?;
            lines.extend_from_slice(buf);
            Some((lines.len() >= HOLD_LIMIT).then(|| std::mem::take(lines)))
        });
        match spill {
            None => io::stderr().write_all(buf),
            Some(None) => Ok(()),
            Some(Some(lines)) => io::stderr().write_all(&lines),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// The kernel's TASK_COMM_LEN: a process name is at most 15 bytes and a NUL.
const COMM_LEN: usize = 16;

/// A process name as `/proc/PID/comm` gives it (cheap to copy, as [`Caller`] is).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Comm {
    bytes: [u8; COMM_LEN],
    len: u8,
}

impl Comm {
    /// The name of process `pid`, if it can still be read.
    pub fn of(pid: i32) -> Option<Comm> {
        let raw = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
        Some(Comm::new(raw.strip_suffix(b"\n").unwrap_or(&raw)))
    }

    /// `name`, cut to what the kernel keeps.
    pub fn new(name: &[u8]) -> Comm {
        let mut bytes = [0; COMM_LEN];
        let len = name.len().min(COMM_LEN - 1);
        bytes[..len].copy_from_slice(&name[..len]);
        Comm {
            bytes,
            len: len as u8,
        }
    }

    /// The name, with bytes that are not UTF-8 replaced.
    pub fn as_string(&self) -> String {
        String::from_utf8_lossy(&self.bytes[..self.len as usize]).into_owned()
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_string(), f)
    }
}

/// Who asked for a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The daemon itself (expiry, shutdown, a vanished interface).
    Daemon,
    /// An API client, as SO_PEERCRED saw it when it connected.
    Client {
        /// User id.
        uid: Option<u32>,
        /// Group id.
        gid: Option<u32>,
        /// Process id.
        pid: Option<i32>,
        /// Process name.
        process: Option<Comm>,
        /// The experiment acting for the client, if any (its id, 12 hex digits).
        experiment: Option<u64>,
    },
}

impl Caller {
    /// The same caller, acting through experiment `id` (12 hex digits; anything else is not
    /// an experiment id and leaves the caller as it is).
    pub fn in_experiment(self, id: &str) -> Caller {
        match (self, u64::from_str_radix(id, 16)) {
            (
                Caller::Client {
                    uid,
                    gid,
                    pid,
                    process,
                    ..
                },
                Ok(tag),
            ) => Caller::Client {
                uid,
                gid,
                pid,
                process,
                experiment: Some(tag),
            },
            (caller, _) => caller,
        }
    }
}

/// What happened to a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Installed by a client.
    Create,
    /// Removed by id or selector.
    Delete,
    /// Removed by the panic button.
    DeleteAll,
    /// Its TTL or parameters were changed by a client.
    Update,
    /// Its TTL ended.
    Expire,
    /// Removed because the daemon stops.
    Shutdown,
    /// Removed because its interface disappeared.
    InterfaceGone,
    /// Removed because the cgroup it was scoped to disappeared.
    CgroupGone,
    /// Removed because the cgroup it was scoped to held processes and then none.
    CgroupEmptied,
    /// Its interface was re-created under the same name; the programs were attached again.
    InterfaceReplaced,
    /// Removed because the qdisc that held its delayed packets was deleted or replaced.
    QdiscGone,
    /// The dead-man switch tripped: the kernel had lifted it; the daemon ended it.
    Deadman,
    /// An experiment was asked for (audited when refused; an accepted one as `experiment_start`).
    Experiment,
    /// An experiment was accepted and begins (its steady state is checked first).
    ExperimentStart,
    /// An experiment ended, in the state the line gives, and why.
    ExperimentEnd,
}

impl Event {
    /// The `action` field of the audit line.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Create => "create",
            Event::Delete => "delete",
            Event::DeleteAll => "delete_all",
            Event::Update => "update",
            Event::Expire => "expire",
            Event::Shutdown => "shutdown",
            Event::InterfaceGone => "interface_gone",
            Event::CgroupGone => "cgroup_gone",
            Event::CgroupEmptied => "cgroup_emptied",
            Event::InterfaceReplaced => "interface_replaced",
            Event::QdiscGone => "qdisc_gone",
            Event::Deadman => "deadman",
            Event::Experiment => "experiment",
            Event::ExperimentStart => "experiment_start",
            Event::ExperimentEnd => "experiment_end",
        }
    }
}

/// Why a request was refused, as the API answered it.
pub struct Refusal<'a> {
    /// HTTP status.
    pub status: u16,
    /// The error message.
    pub error: &'a str,
    /// The field it names, if any.
    pub field: Option<&'a str>,
}

/// Writes the audit line for `event` on fault `id`.
pub fn record(event: Event, id: &str, spec: &FaultSpec, caller: Caller) {
    line(Line {
        id: Some(id),
        spec: Some(spec),
        ..Line::new(event, caller)
    });
}

/// Writes the audit line of fault `id` updated from `old` to `new`: what it does now, and did.
pub fn updated(id: &str, old: &FaultSpec, new: &FaultSpec, caller: Caller) {
    let was = format!(
        "{}, ttl {}",
        old.action.describe(old.percent),
        humantime::format_duration(old.ttl)
    );
    line(Line {
        id: Some(id),
        spec: Some(new),
        was: Some(&was),
        ..Line::new(Event::Update, caller)
    });
}

/// Writes the audit line of experiment `id` named `name` starting, or (with `ended`: its
/// state and the reason) ending.
pub fn experiment(id: &str, name: &str, ended: Option<(&str, Option<&str>)>, caller: Caller) {
    line(Line {
        id: Some(id),
        name: Some(name),
        state: ended.map(|(s, _)| s),
        reason: ended.and_then(|(_, r)| r),
        ..Line::new(
            if ended.is_some() {
                Event::ExperimentEnd
            } else {
                Event::ExperimentStart
            },
            caller,
        )
    });
}

/// Writes the audit line of a created fault; `overrode` is the protection its `force` overrode.
pub fn created(id: &str, spec: &FaultSpec, overrode: Option<&str>, caller: Caller) {
    line(Line {
        id: Some(id),
        spec: Some(spec),
        forced: Some(overrode),
        ..Line::new(Event::Create, caller)
    });
}

/// Writes the audit line of a refused `event`; `spec` is the fault it was about, when the
/// request got far enough to say.
pub fn refused(
    event: Event,
    id: Option<&str>,
    spec: Option<&FaultSpec>,
    caller: Caller,
    why: Refusal<'_>,
) {
    line(Line {
        id,
        spec,
        refusal: Some(why),
        ..Line::new(event, caller)
    });
}

/// Writes the audit line of a refused experiment; `name` is its name, when the request could
/// be read that far.
pub fn refused_experiment(name: Option<&str>, caller: Caller, why: Refusal<'_>) {
    line(Line {
        name,
        refusal: Some(why),
        ..Line::new(Event::Experiment, caller)
    });
}

struct Line<'a> {
    event: Event,
    id: Option<&'a str>,
    spec: Option<&'a FaultSpec>,
    /// The name when there is no fault spec to take it from.
    name: Option<&'a str>,
    caller: Caller,
    /// For a create: the protection overridden, if any.
    forced: Option<Option<&'a str>>,
    refusal: Option<Refusal<'a>>,
    /// For an update: what the fault did before.
    was: Option<&'a str>,
    /// For an experiment's end: its state and why.
    state: Option<&'a str>,
    reason: Option<&'a str>,
}

impl Line<'_> {
    fn new(event: Event, caller: Caller) -> Self {
        Line {
            event,
            id: None,
            spec: None,
            name: None,
            caller,
            forced: None,
            refusal: None,
            was: None,
            state: None,
            reason: None,
        }
    }
}

fn line(l: Line<'_>) {
    let (who, uid, gid, pid, process, experiment) = match l.caller {
        Caller::Daemon => ("daemon", None, None, None, None, None),
        Caller::Client {
            uid,
            gid,
            pid,
            process,
            experiment,
        } => (
            "client",
            uid,
            gid,
            pid,
            process.map(|c| c.as_string()),
            experiment.map(|e| format!("{e:012x}")),
        ),
    };
    let spec = l.spec;
    let matches = spec.map(|s| s.matches.describe(s.direction));
    let does = spec.map(|s| s.action.describe(s.percent));
    let ttl = spec.map(|s| humantime::format_duration(s.ttl).to_string());
    tracing::info!(
        target: "audit",
        action = l.event.as_str(),
        result = if l.refusal.is_some() { "refused" } else { "ok" },
        status = l.refusal.as_ref().map(|r| r.status),
        error = l.refusal.as_ref().map(|r| r.error),
        field = l.refusal.as_ref().and_then(|r| r.field),
        id = l.id,
        name = spec.and_then(|s| s.name.as_deref()).or(l.name),
        kind = spec.map(|s| s.action.kind()),
        does = does.as_deref(),
        was = l.was,
        state = l.state,
        reason = l.reason,
        percent = spec.and_then(|s| s.action.own_percent()),
        share = spec.map(|s| s.percent),
        effective_percent = spec.map(FaultSpec::effective_percent),
        direction = spec.map(|s| s.direction.as_str()),
        "match" = matches.as_deref(),
        interface = spec.and_then(|s| s.interface.as_deref()),
        ttl = ttl.as_deref(),
        forced = l.forced.map(|o| o.is_some()),
        overrode = l.forced.flatten(),
        caller = who,
        uid,
        gid,
        pid,
        process = process.as_deref(),
        experiment = experiment.as_deref(),
    );
}
