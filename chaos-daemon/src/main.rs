//! `chaos-daemon`: loads the fault-injection programs and serves the API on a Unix socket.
//! See `chaos-daemon --help`.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use chaos_daemon::{
    Injector, api, attach,
    config::{Config, LogFormat},
    host,
};
use clap::{Parser, Subcommand};
use tokio::{
    net::UnixListener,
    signal::unix::{SignalKind, signal},
};

/// Default socket path (contract).
const DEFAULT_SOCKET: &str = "/run/chaos-daemon/chaos.sock";
/// Default config path.
const DEFAULT_CONFIG: &str = "/etc/chaos-daemon/config.toml";

#[derive(Parser)]
#[command(
    name = "chaos-daemon",
    version,
    about = "eBPF network fault injector daemon: per-destination loss and blackholes with TTLs",
    long_about = "Loads TC/XDP programs and serves an HTTP/JSON API on a Unix socket (no TCP listener).\n\
        Faults are added with `chaosctl` or curl, e.g.\n  \
        curl --unix-socket /run/chaos-daemon/chaos.sock -d '{\"match\":{\"cidr\":\"10.0.3.0/24\"},\"action\":{\"kind\":\"blackhole\"},\"ttl\":\"60s\"}' http://localhost/v1/faults\n\
        Every fault ends at its TTL (enforced in the kernel too), on DELETE /v1/faults, on SIGTERM/SIGINT,\n\
        and when the daemon dies (programs are attached with links that are never pinned)."
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
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Offline cleanup after a crash: remove a stale socket. (TCX/XDP links die with the daemon,
    /// so no program can be left attached.)
    Cleanup,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHAOS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// True if a daemon answers on `socket`.
fn someone_listens(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// Removes clsact filters a crashed daemon left on any interface of this namespace (netlink
/// attach path only); returns the interfaces cleaned.
fn remove_stale_filters() -> Vec<String> {
    let mut cleaned = Vec::new();
    for iface in host::interfaces() {
        match attach::remove_stale_filters(&iface) {
            Ok(true) => {
                tracing::warn!(
                    iface,
                    "removed a chaos_egress filter left by an earlier daemon"
                );
                cleaned.push(iface);
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(iface, error = %e, "cannot check for stale filters"),
        }
    }
    cleaned
}

/// How long open connections may drain after SIGTERM/SIGINT before the daemon exits anyway.
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Removes every fault with one audit line each; returns how many.
fn remove_all_audited(state: &api::AppState, action: &str) -> usize {
    let removed = state.faults().remove_all();
    for f in &removed {
        tracing::info!(target: "audit", action, id = %f.id, fault = %api::summary(&f.spec), caller = "daemon", "fault removed");
    }
    removed.len()
}

fn bind(socket: &Path, group: Option<&str>) -> Result<UnixListener> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if socket.exists() {
        if someone_listens(socket) {
            bail!(
                "another chaos-daemon is already listening on {}",
                socket.display()
            );
        }
        std::fs::remove_file(socket)
            .with_context(|| format!("cannot remove stale socket {}", socket.display()))?;
    }
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
    if let Some(group) = group {
        let gid = nix::unistd::Group::from_name(group)?
            .with_context(|| format!("socket_group {group:?} does not exist"))?
            .gid;
        nix::unistd::chown(socket, None, Some(gid))
            .with_context(|| format!("cannot chown socket to group {group}"))?;
    }
    Ok(listener)
}

async fn shutdown_signal() -> &'static str {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
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
        if someone_listens(&args.socket) {
            bail!(
                "a chaos-daemon is running on {}: stop it instead (its faults go with it)",
                args.socket.display()
            );
        }
        if args.socket.exists() {
            std::fs::remove_file(&args.socket)?;
            println!("removed stale socket {}", args.socket.display());
        }
        let cleaned = remove_stale_filters();
        if cleaned.is_empty() {
            println!("no stale filters (TCX/XDP links never outlive the daemon)");
        } else {
            println!(
                "removed stale chaos_egress filters from: {}",
                cleaned.join(", ")
            );
        }
        return Ok(());
    }

    // Fail at start, not at the first request, if programs cannot be loaded here; keep the
    // loaded programs for the first interface.
    let spare = Injector::detached().context("chaos-daemon cannot load its eBPF programs")?;
    // Loading parsed the kernel BTF (megabytes, freed by now): hand that memory back.
    api::release_freed_memory();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = bind(&args.socket, config.socket_group.as_deref())?;
        // We own the socket now, so any filter of ours still attached is stale.
        remove_stale_filters();
        let state = api::AppState::new(config, Some(spare));
        tokio::spawn(api::expiry_task(state.clone()));
        let app = api::router(state.clone())
            .into_make_service_with_connect_info::<api::Peer>();
        // The signal name, once one arrives.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel::<Option<&'static str>>(None);
        tokio::spawn(async move {
            let _ = stop_tx.send(Some(shutdown_signal().await));
        });
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        tracing::info!(
            socket = %args.socket.display(),
            startup_ms = started.elapsed().as_millis() as u64,
            "chaos-daemon ready"
        );
        let signalled = |mut rx: tokio::sync::watch::Receiver<Option<&'static str>>| async move {
            let _ = rx.wait_for(Option::is_some).await;
        };
        // On a signal: faults go first, then open connections get a short drain.
        let on_signal = {
            let state = state.clone();
            let rx = stop_rx.clone();
            async move {
                signalled(rx).await;
                remove_all_audited(&state, "shutdown");
            }
        };
        let serve = axum::serve(listener, app).with_graceful_shutdown(on_signal);
        tokio::select! {
            result = serve => result?,
            _ = async {
                signalled(stop_rx.clone()).await;
                tokio::time::sleep(SHUTDOWN_DRAIN).await;
            } => tracing::warn!("connections still open {SHUTDOWN_DRAIN:?} after the signal; exiting anyway"),
        }
        // Anything a draining connection added in the meantime goes too.
        let late = remove_all_audited(&state, "shutdown");
        let _ = std::fs::remove_file(&args.socket);
        tracing::info!(
            signal = stop_rx.borrow().unwrap_or("shutdown"),
            late_faults_removed = late,
            "chaos-daemon stopped; all faults removed"
        );
        Ok::<(), anyhow::Error>(())
    })
}
