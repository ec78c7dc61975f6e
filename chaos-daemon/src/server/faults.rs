//! `/v1/faults` and `/v1/faults/{id}`.

use std::sync::Arc;

use axum::{
    Extension, Json,
    body::Body,
    extract::{Path, RawQuery, Request, State, rejection::PathRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::{ApiError, AppState, body};
use crate::{
    audit::{self, Caller, Event},
    faults::FaultError,
    host,
    spec::{Fault, FaultPatch, FaultSpec, Removed, Selector},
    validate::{Env, validate},
};

/// A JSON answer whose bytes count against the listings in flight until it has been sent.
fn bounded_json<T: Serialize>(
    status: StatusCode,
    value: &T,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let body = Body::new(Guarded {
        inner: http_body_util::Full::new(bytes::Bytes::from(bytes)),
        _permit: permit,
    });
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A body that holds a semaphore permit until it is dropped (sent, or the client went away).
struct Guarded {
    inner: http_body_util::Full<bytes::Bytes>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// How long a listing waits for memory held by other listings.
const LISTING_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn listing_permit(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    tokio::time::timeout(LISTING_WAIT, state.list_permits.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many fault listings in flight (clients not reading their answers); retry",
            )
        })
}

/// Runs `f` with what validation needs to know about the host now. The routing table is read
/// only when some spec leaves the interface out (`default_needed`). `Env` borrows closures,
/// so it lives only inside `f` and never across an await.
pub(super) fn with_env<R>(state: &AppState, default_needed: bool, f: impl FnOnce(&Env) -> R) -> R {
    let protected = state.protected();
    let env = Env {
        max_ttl: state.config.max_ttl,
        default_iface: if default_needed {
            host::default_iface()
        } else {
            None
        },
        iface_exists: &|i| host::iface_exists(i).map_err(|e| e.to_string()),
        interfaces: &host::interfaces,
        protected: protected.as_deref().map_err(Clone::clone),
        fq: host::has_fq(),
        cgroup: &host::cgroup::resolve,
    };
    f(&env)
}

/// Writes the audit line of a refused request about `spec` (if it got that far).
pub(super) fn audit_refusal(
    event: Event,
    id: Option<&str>,
    spec: Option<&FaultSpec>,
    caller: Caller,
    e: &ApiError,
) {
    audit::refused(event, id, spec, caller, e.audited());
}

/// `POST /v1/faults`: one fault object or an array of them, all or nothing. A refusal is
/// audited with the fault it was about.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response, ApiError> {
    let mut about = None;
    let result = create_faults(&state, caller, req, &mut about).await;
    if let Err(e) = &result {
        audit_refusal(Event::Create, None, about.as_ref(), caller, e);
    }
    result
}

async fn create_faults(
    state: &AppState,
    caller: Caller,
    req: Request,
    about: &mut Option<FaultSpec>,
) -> Result<Response, ApiError> {
    let (parts, req_body) = req.into_parts();
    let bytes = body::read(&parts.headers, req_body, body::MAX_BATCH_BODY).await?;
    let (specs, batch) = body::parse_faults(&bytes)?;
    drop(bytes);
    let validated = with_env(state, specs.iter().any(|s| s.interface.is_none()), |env| {
        let mut out = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            match validate(s, env) {
                Ok(v) => out.push(v),
                Err(e) => {
                    *about = Some(s.clone());
                    return Err(if batch { e.at(&format!("[{i}]")) } else { e });
                }
            }
        }
        Ok(out)
    })?;
    drop(specs);
    let count = validated.len();
    let first = validated.first().map(|v| v.spec.clone());
    let created = state.table.create(validated, caller).await.map_err(|e| {
        let index = match &e {
            FaultError::Conflict { index, spec, .. } => {
                *about = Some((**spec).clone());
                Some(*index)
            }
            _ => {
                *about = first.clone();
                None
            }
        };
        let mut api = ApiError::from(e);
        if batch {
            if let (Some(i), Some(f)) = (index, &api.field) {
                api.field = Some(format!("[{i}].{f}"));
            }
            if count > 1 {
                api.error = format!("{} (batch not applied)", api.error);
            }
        }
        api
    })?;
    let response = if batch {
        bounded_json(StatusCode::CREATED, &created, None)
    } else {
        bounded_json(StatusCode::CREATED, &created[0], None)
    };
    if created.len() > 100 {
        drop(created);
        crate::release_freed_memory();
    }
    response
}

/// The selector of a `GET`/`DELETE /v1/faults` query; 400 naming the parameter otherwise.
fn selector(query: Option<String>) -> Result<Selector, ApiError> {
    Selector::parse(query.as_deref()).map_err(|e| ApiError::bad_request(e.param, e.message))
}

/// `GET /v1/faults[?name=…&label=k=v]`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let sel = selector(query)?;
    let permit = listing_permit(&state).await?;
    let mut faults = state.table.list().await?;
    faults.retain(|f| sel.matches(&f.spec));
    bounded_json(StatusCode::OK, &faults, Some(permit))
}

pub(super) fn id_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad fault id: {e}")))
}

/// `GET /v1/faults/{id}`.
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = id_of(path)?;
    match state.table.get(id.clone()).await? {
        Some(f) => Ok(Json(f).into_response()),
        None => Err(FaultError::NotFound(id).into()),
    }
}

/// `PATCH /v1/faults/{id}`: `{"ttl": "10m"}` (time left from now), `{"action": {…}}` (same
/// kind), `{"percent": P}`, or several at once; checked as a new fault would be, then applied
/// in place. A refusal is audited.
pub async fn patch_one(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Json<Fault>, ApiError> {
    let id = id_of(path)?;
    let mut about = None;
    let result = patch_fault(&state, caller, &id, req, &mut about).await;
    if let Err(e) = &result {
        audit_refusal(Event::Update, Some(&id), about.as_ref(), caller, e);
    }
    result
}

async fn patch_fault(
    state: &AppState,
    caller: Caller,
    id: &str,
    req: Request,
    about: &mut Option<FaultSpec>,
) -> Result<Json<Fault>, ApiError> {
    let (parts, req_body) = req.into_parts();
    let bytes = body::read(&parts.headers, req_body, body::MAX_SINGLE_BODY).await?;
    let patch: FaultPatch = body::deserialize(&bytes)?;
    if patch == FaultPatch::default() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "nothing to change: give \"ttl\", \"action\" or \"percent\"",
        ));
    }
    let current = state
        .table
        .get(id.to_string())
        .await?
        .ok_or_else(|| FaultError::NotFound(id.to_string()))?;
    let mut spec = current.spec;
    *about = Some(spec.clone());
    if let Some(action) = patch.action {
        if action.kind() != spec.action.kind() {
            return Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                error: format!(
                    "a {} fault cannot become {}: remove it and add another",
                    spec.action.kind(),
                    action.kind()
                ),
                field: Some("action.kind".into()),
            });
        }
        spec.action = action;
    }
    if let Some(p) = patch.percent {
        spec.percent = p;
    }
    // Checked as the time left: that is what max_ttl bounds for an update.
    spec.ttl = patch.ttl.unwrap_or(std::time::Duration::from_millis(
        current.remaining_ms.max(1),
    ));
    *about = Some(spec.clone());
    let v = with_env(state, false, |env| validate(&spec, env))?;
    Ok(Json(
        state
            .table
            .update(id.to_string(), v, patch.ttl, caller)
            .await?,
    ))
}

/// `DELETE /v1/faults/{id}`.
pub async fn delete_one(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = id_of(path)?;
    match state.table.remove(id.clone(), caller).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(e) => {
            let e = ApiError::from(e);
            audit_refusal(Event::Delete, Some(&id), None, caller, &e);
            Err(e)
        }
    }
}

/// `DELETE /v1/faults`: the panic button.
pub async fn delete_all(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Json<Removed>, ApiError> {
    let sel = selector(query)?;
    let removed = if sel.is_empty() {
        // The panic button ends experiments too, not just their current faults.
        state.experiments.stop_all();
        state.table.remove_all(Event::DeleteAll, caller).await?
    } else {
        state.table.remove_selected(sel, caller).await?
    };
    Ok(Json(Removed { removed }))
}
