//! `chaos-daemon`: loads the fault-injection programs and serves the API on a Unix socket.
//! See `chaos-daemon --help`. This file only wires the library's parts together.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chaos_daemon::{
    Injector,
    config::{Config, DEFAULT_CONFIG, DEFAULT_SOCKET, LogFormat},
    faults::{FaultTable, Faults},
    instance::InstanceLock,
    lifecycle::{self, Stop},
    server::{self, AppState},
    socket::ApiSocket,
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chaos-daemon",
    version,
    about = "eBPF network fault injector daemon: per-destination loss, blackholes, latency and bandwidth with TTLs",
    long_about = "Loads TC/XDP programs and serves an HTTP/JSON API on a Unix socket (no TCP listener).\n\
        Faults are added with `chaosctl` or curl, e.g.\n  \
        curl --unix-socket /run/chaos-daemon/chaos.sock -d '{\"match\":{\"cidr\":\"10.0.3.0/24\"},\"action\":{\"kind\":\"blackhole\"},\"ttl\":\"60s\"}' http://localhost/v1/faults\n\
        Every fault ends at its TTL (enforced in the kernel too), on DELETE /v1/faults, on SIGTERM/SIGINT,\n\
        and when the daemon dies or hangs (links are never pinned, and the programs ignore every\n\
        rule once the daemon's heartbeat is older than `deadman`, 2 s by default).\n\
        Signals: TERM/INT remove every fault and exit 0; USR1 removes every fault and keeps running\n\
        (the panic button when the API is unreachable); HUP is ignored (restart to re-read the config).\n\
        One daemon runs per network namespace."
)]
struct Args {
    /// Unix socket to listen on (mode 0660).
    #[arg(long, env = "CHAOS_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// TOML config file [default: /etc/chaos-daemon/config.toml, used if present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log format (overrides the config).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Group that may use the socket (overrides the config).
    #[arg(long)]
    socket_group: Option<String>,
    /// Let the programs report odd packets (bad IPv4 headers, over-long IPv6 extension
    /// chains) to the log, target `bpf` at debug level (`CHAOS_LOG=info,bpf=debug`). Off by
    /// default: then the log calls are not even in the verified programs.
    #[arg(long)]
    bpf_log: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Offline cleanup after a crash: remove a stale socket, clsact filters a daemon on a
    /// pre-6.6 kernel left behind, and the qdisc tree it installed for latency faults (the
    /// state file of this network namespace beside the socket; run it in the daemon's
    /// namespace). TCX/XDP links die with the daemon.
    Cleanup,
    /// Print the man page (roff), as `cargo xtask install` and the Debian package install it.
    #[command(hide = true)]
    Man,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHAOS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| chaos_daemon::audit::LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> Result<()> {
    chaos_daemon::cap_malloc_arenas();
    let args = Args::parse();
    if let Some(Cmd::Man) = args.cmd {
        // Before the config: packaging runs this where no config exists.
        clap_mangen::Man::new(<Args as clap::CommandFactory>::command())
            .render(&mut std::io::stdout())?;
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut config = match &args.config {
        Some(path) => Config::load(path, true)?,
        None => Config::load(Path::new(DEFAULT_CONFIG), false)?,
    };
    if let Some(f) = args.log_format {
        config.log_format = f;
    }
    if args.socket_group.is_some() {
        config.socket_group = args.socket_group.clone();
    }
    init_logging(config.log_format);

    if let Some(Cmd::Cleanup) = args.cmd {
        return lifecycle::cleanup(&args.socket);
    }
    let _lock = InstanceLock::acquire(&args.socket)?;
    lifecycle::raise_fd_limit();
    if args.bpf_log {
        chaos_daemon::loader::bpf_log::enable(chaos_daemon::loader::bpf_log::Level::Debug);
    }

    // Whether sch_fq exists is measured in a throw-away namespace (tens of ms): meanwhile.
    std::thread::spawn(chaos_daemon::host::has_fq);
    // Beating before any program is loaded: every loaded object is armed from the start.
    let deadman = chaos_daemon::loader::deadman::start(config.deadman);
    // Fail at start, not at the first request, if programs cannot be loaded here; keep the
    // loaded programs for the first interface.
    let spare = Injector::detached().context("chaos-daemon cannot load its eBPF programs")?;
    // Loading parsed the kernel BTF (megabytes, freed by now): hand that memory back.
    chaos_daemon::release_freed_memory();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (api_socket, listener) = ApiSocket::bind(&args.socket, config.socket_group.as_deref())?;
        // We hold the namespace lock, so any filter or fq of ours still in place is stale.
        lifecycle::remove_stale_filters();
        let state_file = lifecycle::state_file(&args.socket);
        lifecycle::restore_qdiscs(&state_file);
        let guard = FaultTable::start(
            Faults::new(config.max_rules, Some(spare), config.attach_options()),
            Some(state_file),
        );
        let table = guard.table();
        let state = AppState::new(config, table.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<Result<Stop>>();
        let reason = async {
            let stop = lifecycle::stop_reason(table.clone(), &api_socket, &deadman).await;
            // Faults go first, then open connections get a short drain; creates meanwhile
            // get 503.
            let removed = table.close().await.unwrap_or(0);
            tracing::info!(removed, "stopping: every fault removed");
            let _ = stop_tx.send(stop);
        };
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        tracing::info!(
            socket = %args.socket.display(),
            startup_ms = started.elapsed().as_millis() as u64,
            max_connections = server::max_connections(),
            "chaos-daemon ready"
        );
        if !server::run(listener, state, reason).await {
            tracing::warn!(
                "connections still open {:?} after shutdown started; exiting anyway",
                server::SHUTDOWN_DRAIN
            );
        }
        drop(guard);
        match stop_rx.await.context("shutdown reason lost")?? {
            Stop::Signal(sig) => {
                tracing::info!(signal = sig, "chaos-daemon stopped; all faults removed");
                Ok(())
            }
            Stop::SocketGone => bail!(
                "the socket {} was deleted or replaced: nobody could reach this daemon, so it removed its faults and stopped",
                args.socket.display()
            ),
        }
    })
}
