//! aya-log records from the programs (anomalies only, see `chaos-ebpf/src/log.rs`), forwarded
//! to `tracing` under target `bpf`. Off unless enabled: the level is patched into the object
//! at load time, so with logging off the verifier removes the log calls.

use std::{
    os::fd::AsFd,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::Duration,
};

pub use aya_log::Level;

/// `AYA_LOG_LEVEL` for programs loaded from now on; 0 = off.
static LEVEL: AtomicU8 = AtomicU8::new(0);

/// Programs loaded from now on report anomalies at `level` and below (`chaos-daemon --bpf-log`).
pub fn enable(level: Level) {
    LEVEL.store(level as u8, Ordering::SeqCst);
}

/// The level programs are loaded with; 0 = off.
pub(super) fn level() -> u8 {
    LEVEL.load(Ordering::SeqCst)
}

/// Forwards records to `tracing` (the daemon's logging), target `bpf`.
pub struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let msg = record.args().to_string();
        match record.level() {
            log::Level::Error => tracing::error!(target: "bpf", "{msg}"),
            log::Level::Warn => tracing::warn!(target: "bpf", "{msg}"),
            log::Level::Info => tracing::info!(target: "bpf", "{msg}"),
            log::Level::Debug => tracing::debug!(target: "bpf", "{msg}"),
            log::Level::Trace => tracing::trace!(target: "bpf", "{msg}"),
        }
    }

    fn flush(&self) {}
}

/// A thread that drains the programs' log ring buffer while it lives.
pub struct LogPump {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogPump {
    /// Starts draining the `AYA_LOGS` ring buffer of `ebpf` into `logger`.
    pub fn start<T: log::Log + Send + 'static>(
        ebpf: &mut aya::Ebpf,
        logger: T,
    ) -> Result<LogPump, super::Error> {
        let mut reader = aya_log::EbpfLogger::init_with_logger(ebpf, logger)
            .map_err(|e| super::Error::Load(Box::new(e)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bpf-log".into())
            .spawn(move || {
                while !halt.load(Ordering::SeqCst) {
                    // Wake when records arrive, or every 200 ms to notice `stop`.
                    let mut fds = [nix::poll::PollFd::new(
                        reader.as_fd(),
                        nix::poll::PollFlags::POLLIN,
                    )];
                    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16));
                    reader.flush();
                }
            })
            .map_err(|e| super::Error::Load(Box::new(e)))?;
        Ok(LogPump {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LogPump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long the pump may take to pass a record on (its poll timeout, plus slack).
pub const PUMP_DELAY: Duration = Duration::from_millis(300);
