//! The API server: HTTP/1.1 + JSON over a Unix socket. [`run`] serves a listener until a
//! shutdown future resolves; [`router`] maps paths to the handlers, one file per resource
//! ([`health`], [`faults`], [`experiments`], [`metrics`]). Domain errors become statuses only in [`error`].
//!
//! No client can hold the server: headers must arrive within [`HEADER_TIMEOUT`], bodies within
//! [`body::BODY_TIMEOUT`], a connection lives at most [`CONNECTION_LIFETIME`], and at most
//! [`max_connections`] are served at once, so the fd limit is never reached. At that cap a new
//! connection takes the place of the oldest idle or slow one ([`connections`]): held
//! connections cannot keep the panic button out of the API (SIGUSR1 reaches it anyway).

mod body;
mod connections;
mod error;
mod experiments;
mod faults;
mod health;
mod metrics;
mod peer;
mod state;

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::Request,
    http::{Method, StatusCode},
    middleware::{self, Next},
    response::Response,
    routing::get,
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::UnixListener;
use tower::ServiceExt;

pub use body::{MAX_BATCH_BODY, MAX_SINGLE_BODY, parse_faults};
pub use error::ApiError;
pub use state::{AppState, PeerReader};

/// A request's headers must arrive within this time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed after this long, whatever it is doing (requests take milliseconds).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// After shutdown starts, open connections get this long to finish.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(2);

/// Connections served at once: well below the open-file limit, which every map, link and the
/// sock_diag reads also need.
pub fn max_connections() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    (soft.saturating_sub(256) / 2).clamp(16, 4096) as usize
}

/// The API routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/health", get(health::get))
        .route(
            "/v1/faults",
            get(faults::list)
                .post(faults::create)
                .delete(faults::delete_all),
        )
        .route(
            "/v1/faults/{id}",
            get(faults::get_one)
                .delete(faults::delete_one)
                .patch(faults::patch_one),
        )
        .route(
            "/v1/experiments",
            get(experiments::list).post(experiments::create),
        )
        .route(
            "/v1/experiments/{id}",
            get(experiments::get_one).delete(experiments::stop),
        )
        .route("/metrics", get(metrics::get))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint; see GET /v1/health, /v1/faults, /v1/experiments, /metrics",
            )
        })
        .method_not_allowed_fallback(|req: Request| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed on {}", req.method(), req.uri().path()),
            )
        })
        .layer(middleware::from_fn(refuse_query))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Only `GET` and `DELETE /v1/faults` take query parameters (selectors, parsed and checked by
/// their handlers): a parameter a client expects to narrow any other request must never be
/// ignored.
async fn refuse_query(req: Request, next: Next) -> Result<Response, ApiError> {
    let selectable =
        req.uri().path() == "/v1/faults" && matches!(*req.method(), Method::GET | Method::DELETE);
    if let Some(q) = req.uri().query().filter(|_| !selectable) {
        let names: Vec<String> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.split('=')
                    .next()
                    .unwrap_or("")
                    .escape_default()
                    .to_string()
            })
            .collect();
        return Err(ApiError::bad_request(
            names.first().cloned().unwrap_or_default(),
            format!(
                "{} {} takes no query parameters (got: {})",
                req.method(),
                req.uri().path(),
                if names.is_empty() {
                    "an empty query".into()
                } else {
                    names.join(", ")
                }
            ),
        ));
    }
    Ok(next.run(req).await)
}

async fn count_requests(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().to_string();
    let resp = next.run(req).await;
    state.metrics.count_request(&method, resp.status().as_u16());
    resp
}

/// Serves `listener` until `shutdown` resolves, then gives open connections
/// [`SHUTDOWN_DRAIN`] to finish. Returns false if some were still open then.
pub async fn run(
    listener: UnixListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let app = router(state);
    let graceful = GracefulShutdown::new();
    let limit = max_connections();
    let slots = Arc::new(tokio::sync::Semaphore::new(limit));
    let open = connections::Connections::new();
    let mut warned_at: Option<std::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on the same error.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                let evicted = open.evict_one();
                if warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(
                        limit,
                        evicted,
                        "connection limit reached: new connections replace the oldest idle or \
                         slow one, or are closed if every one is in a fresh request"
                    );
                    warned_at = Some(std::time::Instant::now());
                }
                if evicted {
                    // The aborted task gives its slot back at its next poll.
                    tokio::time::timeout(Duration::from_millis(500), slots.clone().acquire_owned())
                        .await
                        .ok()
                        .and_then(Result::ok)
                } else {
                    None
                }
            }
        };
        let Some(slot) = slot else {
            drop(stream);
            continue;
        };
        let caller = peer::caller_of(&stream);
        let app = app.clone();
        let registry = open.clone();
        let graceful = &graceful;
        open.spawn(move |mark| {
            let service = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(caller);
                let busy = registry.busy(&mark);
                let app = app.clone();
                async move {
                    let _busy = busy;
                    app.oneshot(req).await
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                // A client that shuts down its write side after the request still gets the
                // answer.
                .half_close(true)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let conn = graceful.watch(conn);
            async move {
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
                drop(slot);
            }
        });
    }
    drop(listener);
    tokio::time::timeout(SHUTDOWN_DRAIN, graceful.shutdown())
        .await
        .is_ok()
}

/// The HTTP layer's answers, without root: none of these requests reaches the loader.
#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http_body_util::BodyExt;

    use super::*;
    use crate::{
        audit::Caller,
        config::Config,
        faults::{FaultTable, Faults},
        loader::attach::AttachOptions,
    };

    async fn answer(
        app: &Router,
        method: &str,
        uri: &str,
        body: &str,
        len: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = axum::http::Request::builder().method(method).uri(uri);
        if let Some(l) = len {
            req = req.header("content-length", l);
        }
        let mut req = req.body(Body::from(body.to_string())).unwrap();
        req.extensions_mut().insert(Caller::Daemon);
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn refusals_are_json_and_name_what_is_wrong() {
        let guard = FaultTable::start(Faults::new(10, None, AttachOptions::default()), None);
        let config = Config {
            protect_ssh_peers: false,
            ..Config::default()
        };
        let app = router(AppState::new(config, guard.table()));
        let ok = r#"{"interface":"lo","match":{"cidr":"10.0.0.1"},"action":{"kind":"blackhole"},"ttl":"1m"}"#;
        let cases = [
            (
                "DELETE",
                "/v1/faults?nam=bulk-7",
                "",
                None,
                400,
                Some("nam"),
            ),
            ("POST", "/v1/faults?name=x", ok, None, 400, Some("name")),
            ("GET", "/v1/health?", "", None, 400, None),
            ("GET", "/v1/nothing", "", None, 404, None),
            ("PUT", "/v1/health", "", None, 405, None),
            ("GET", "/v1/faults/%ff%fe", "", None, 400, None),
            ("GET", "/v1/faults/abc", "", None, 404, None),
            ("POST", "/v1/faults", "{", None, 400, None),
            ("POST", "/v1/faults", ok, Some("99999999999"), 413, None),
            (
                "POST",
                "/v1/faults",
                &ok.replace("10.0.0.1", "10.0.0.300"),
                None,
                422,
                Some("match.cidr"),
            ),
            (
                "POST",
                "/v1/faults",
                &format!("[{ok},{}]", ok.replace("1m", "2h")),
                None,
                422,
                Some("[1].ttl"),
            ),
        ];
        for (method, uri, body, len, status, field) in cases {
            let (s, e) = answer(&app, method, uri, body, len).await;
            assert_eq!(s.as_u16(), status, "{method} {uri} {body}: {e}");
            assert!(e["error"].is_string(), "{method} {uri}: {e}");
            if let Some(f) = field {
                assert_eq!(e["field"], f, "{method} {uri}: {e}");
            }
        }
        let (s, list) = answer(&app, "GET", "/v1/faults", "", None).await;
        assert_eq!((s, list), (StatusCode::OK, serde_json::json!([])));
        let (s, removed) = answer(&app, "DELETE", "/v1/faults", "", None).await;
        assert_eq!((s, removed["removed"].clone()), (StatusCode::OK, 0.into()));
    }
}
