//! HTTP/1.1 + JSON API over a Unix socket (axum). Every change is audited with the caller's
//! uid/pid (SO_PEERCRED). Bad input gets a 4xx naming the field and changes nothing.

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Path, Request, State, connect_info::Connected},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    serve::IncomingStream,
};
use http_body_util::BodyExt;
use tokio::{net::UnixListener, sync::Notify};

use crate::{
    config::Config,
    faults::Faults,
    host,
    metrics::Metrics,
    spec::{ErrorBody, FaultSpec, Features, Health, Removed},
    validate::{ApiError, Env, Protected, Validated, parse_net, validate},
};

/// Largest body for a single fault.
pub const MAX_SINGLE_BODY: usize = 64 * 1024;
/// Largest body for a JSON array of faults (10k faults fit comfortably).
pub const MAX_BATCH_BODY: usize = 8 * 1024 * 1024;

/// State shared by the handlers and the expiry task.
pub struct AppState {
    /// Installed faults.
    pub faults: Mutex<Faults>,
    /// Configuration.
    pub config: Config,
    /// Woken when a fault is added, so the expiry task re-reads the next deadline.
    pub expiry_wake: Notify,
    /// Metrics.
    pub metrics: Metrics,
    /// Protected paths from the config, parsed once.
    configured_protected: Vec<Protected>,
    /// Peers of established SSH sessions and when they were read.
    ssh_peers: Mutex<Option<(std::time::Instant, Vec<std::net::IpAddr>)>>,
}

/// How long a reading of the SSH session peers is reused. Listing sockets walks the kernel's
/// whole TCP hash (≈ 0.15 ms per family here), too slow to repeat for every request of a burst.
const SSH_PEERS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

impl AppState {
    /// New state for `config`; `spare` is a loaded injector for the first interface.
    pub fn new(config: Config, spare: Option<crate::Injector>) -> Arc<Self> {
        // Config::load checked every CIDR already.
        let mut configured_protected: Vec<Protected> = config
            .protected_cidrs
            .iter()
            .filter_map(|c| parse_net(c).ok())
            .map(|net| Protected::Net {
                net,
                why: "protected CIDR from config".into(),
            })
            .collect();
        configured_protected.extend(config.protected_tcp_ports.iter().map(|&port| {
            Protected::TcpPort {
                port,
                why: "protected port".into(),
            }
        }));
        Arc::new(AppState {
            configured_protected,
            faults: Mutex::new(Faults::new(
                config.max_rules,
                spare,
                config.attach_options(),
            )),
            config,
            expiry_wake: Notify::new(),
            metrics: Metrics::default(),
            ssh_peers: Mutex::new(None),
        })
    }

    /// Locks the fault table (a poisoned lock is still usable: the table stays consistent).
    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Peers of established SSH sessions, at most [`SSH_PEERS_MAX_AGE`] old.
    fn ssh_peers(&self) -> Vec<std::net::IpAddr> {
        let mut cached = self.ssh_peers.lock().unwrap_or_else(|p| p.into_inner());
        match &*cached {
            Some((at, peers)) if at.elapsed() < SSH_PEERS_MAX_AGE => peers.clone(),
            _ => {
                let peers = host::tcp_peers_of_local_port(22);
                *cached = Some((std::time::Instant::now(), peers.clone()));
                peers
            }
        }
    }

    /// Protected paths right now: configured CIDRs and ports, plus live SSH peers.
    fn protected(&self) -> Vec<Protected> {
        let mut p = self.configured_protected.clone();
        if self.config.protect_ssh_peers {
            p.extend(self.ssh_peers().into_iter().map(|ip| Protected::Net {
                net: ip.into(),
                why: "peer of an established SSH session".into(),
            }));
        }
        p
    }
}

/// The caller, from SO_PEERCRED on the Unix socket.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// User id.
    pub uid: Option<u32>,
    /// Process id.
    pub pid: Option<i32>,
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(c) => Peer {
                uid: Some(c.uid()),
                pid: c.pid(),
            },
            Err(_) => Peer {
                uid: None,
                pid: None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(ErrorBody {
                error: self.error,
                field: self.field,
            }),
        )
            .into_response()
    }
}

/// The API routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/faults", get(list).post(create).delete(delete_all))
        .route("/v1/faults/{id}", get(get_one).delete(delete_one))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(
                404,
                "no such endpoint; see GET /v1/health, /v1/faults, /metrics",
            )
        })
        .method_not_allowed_fallback(|req: Request| async move {
            ApiError::new(
                405,
                format!("{} is not allowed on {}", req.method(), req.uri().path()),
            )
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn count_requests(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let resp = next.run(req).await;
    state.metrics.count_request(&method, resp.status().as_u16());
    resp
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let faults = state.faults();
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        kernel: host::kernel_release(),
        interfaces: faults.interfaces(),
        features: Features {
            fq: host::has_fq(),
            tcx: host::has_tcx(),
        },
        faults: faults.len(),
    })
}

fn who(peer: &Peer) -> String {
    format!(
        "uid={} pid={}",
        peer.uid.map_or("?".into(), |u| u.to_string()),
        peer.pid.map_or("?".into(), |p| p.to_string())
    )
}

/// One-line summary of a fault for the audit log.
pub fn summary(spec: &FaultSpec) -> String {
    let m = &spec.matches;
    format!(
        "{} {} {} {}{}{} ttl={}",
        spec.action.kind(),
        spec.direction,
        spec.interface.as_deref().unwrap_or("?"),
        m.cidr.as_deref().unwrap_or("-"),
        m.protocol.map(|p| format!(" {p}")).unwrap_or_default(),
        m.port.map(|p| format!(":{p}")).unwrap_or_default(),
        humantime::format_duration(spec.ttl),
    )
}

/// Reads the body within the size limits.
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_BATCH_BODY);
    let bytes: Bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(ApiError::new(
                413,
                format!("body larger than {MAX_BATCH_BODY} bytes"),
            ));
        }
        Err(e) => return Err(ApiError::new(400, format!("cannot read body: {e}"))),
    };
    if first_byte(&bytes) != Some(b'[') && bytes.len() > MAX_SINGLE_BODY {
        return Err(ApiError::new(
            413,
            format!(
                "body larger than {MAX_SINGLE_BODY} bytes (only a JSON array of faults may be larger)"
            ),
        ));
    }
    Ok(bytes)
}

fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes.iter().find(|b| !b.is_ascii_whitespace()).copied()
}

/// Parses a body: one fault object, or an array of them (`batch == true`). Errors name the field
/// (`match.port`, `action.kind`, `[3].ttl`…).
pub fn parse_body(bytes: &[u8]) -> Result<(Vec<FaultSpec>, bool), ApiError> {
    match first_byte(bytes) {
        Some(b'[') => {
            let specs: Vec<FaultSpec> = deserialize(bytes)?;
            if specs.is_empty() {
                return Err(ApiError::new(422, "empty array: nothing to create"));
            }
            Ok((specs, true))
        }
        Some(b'{') => Ok((vec![deserialize(bytes)?], false)),
        _ => Err(ApiError::new(
            400,
            "body must be a JSON fault object or an array of them",
        )),
    }
}

fn deserialize<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(400, format!("malformed JSON: {inner}"));
        }
        let msg = inner.to_string();
        // serde names unknown/missing fields in backticks; add them to the path.
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| msg.strip_prefix(p).and_then(|r| r.split('`').next()));
        let field = match (path.as_str(), named) {
            (".", Some(n)) => n.to_string(),
            (".", None) => String::new(),
            // Unknown fields are already the last path segment; missing ones are not.
            (p, Some(n)) if !p.ends_with(&format!(".{n}")) && p != n => format!("{p}.{n}"),
            (p, _) => p.to_string(),
        };
        if field.is_empty() {
            return ApiError::new(400, msg);
        }
        ApiError {
            status: 400,
            error: format!("{field}: {msg}"),
            field: Some(field),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::new(400, format!("malformed JSON: {e}")))?;
    Ok(value)
}

async fn create(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let (specs, batch) = parse_body(&bytes)?;
    drop(bytes);
    let protected = state.protected();
    let env = Env {
        max_ttl: state.config.max_ttl,
        // Only read the routing table when a spec leaves the interface out.
        default_iface: if specs.iter().any(|s| s.interface.is_none()) {
            host::default_iface()
        } else {
            None
        },
        iface_exists: &host::iface_exists,
        protected: &protected,
    };
    let validated = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            validate(s, &env).map_err(|e| if batch { e.at(&format!("[{i}]")) } else { e })
        })
        .collect::<Result<Vec<Validated>, _>>()?;
    drop(specs);
    let created = {
        let mut faults = state.faults();
        faults.create(validated)?
    };
    state.expiry_wake.notify_one();
    for f in &created {
        tracing::info!(target: "audit", action = "create", id = %f.id, fault = %summary(&f.spec), caller = %who(&peer), "fault created");
    }
    let body = if batch {
        serde_json::to_vec(&created)
    } else {
        serde_json::to_vec(&created[0])
    };
    let body = body.map_err(|e| ApiError::new(500, e.to_string()))?;
    if created.len() > 100 {
        drop(created);
        release_freed_memory();
    }
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

async fn list(State(state): State<Arc<AppState>>) -> Response {
    Json(state.faults().list()).into_response()
}

async fn get_one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let fault = state.faults().get(&id);
    fault
        .map(|f| Json(f).into_response())
        .ok_or_else(|| ApiError::new(404, format!("no fault with id {id}")))
}

async fn delete_one(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let removed = state.faults().remove(&id)?;
    tracing::info!(target: "audit", action = "delete", id = %removed.id, fault = %summary(&removed.spec), caller = %who(&peer), "fault removed");
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_all(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
) -> Json<Removed> {
    let removed = state.faults().remove_all();
    for f in &removed {
        tracing::info!(target: "audit", action = "delete_all", id = %f.id, fault = %summary(&f.spec), caller = %who(&peer), "fault removed by panic button");
    }
    Json(Removed {
        removed: removed.len(),
    })
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let faults = state.faults().list();
    let text = state.metrics.render(&faults);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Hands memory freed by a large request back to the kernel, so RSS tracks the fault table
/// rather than the biggest request ever parsed (glibc keeps freed heap otherwise).
pub fn release_freed_memory() {
    // SAFETY: malloc_trim only releases free heap pages; always safe to call.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Removes faults at their deadline, and those whose interface vanished. Runs until the process
/// ends.
pub async fn expiry_task(state: Arc<AppState>) {
    // Interfaces can vanish under their faults (a deleted veth, a replaced NIC): check each second.
    let mut interface_check = tokio::time::interval(std::time::Duration::from_secs(1));
    interface_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = state.faults().next_deadline();
        let sleep = match next {
            Some(at) => {
                std::time::Duration::from_nanos(at.saturating_sub(crate::clock::monotonic_ns()))
            }
            None => std::time::Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {
                let expired = state.faults().expire();
                for f in &expired {
                    tracing::info!(target: "audit", action = "expire", id = %f.id, fault = %summary(&f.spec), caller = "daemon", "fault expired");
                }
            }
            _ = state.expiry_wake.notified() => {}
            _ = interface_check.tick() => {
                let gone = state.faults().drop_vanished_interfaces();
                for f in &gone {
                    tracing::warn!(target: "audit", action = "interface_gone", id = %f.id, fault = %summary(&f.spec), caller = "daemon", "fault removed: its interface disappeared");
                }
            }
        }
    }
}
