//! `/v1/experiments` and `/v1/experiments/{id}`.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::{Path, Request, State, rejection::PathRejection},
    http::StatusCode,
};

use super::{ApiError, AppState, body, faults::with_env};
use crate::{
    audit::{self, Caller},
    experiments::{StartError, plan},
    faults::FaultError,
    spec::{Experiment, ExperimentSpec},
    validate::validate,
};

/// The (uid, gid) command probes run as: the caller's user and that user's primary group.
fn probe_identity(caller: Caller) -> Option<(u32, u32)> {
    let Caller::Client { uid: Some(uid), .. } = caller else {
        return None;
    };
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
    Some((uid, user.gid.as_raw()))
}

/// `POST /v1/experiments`: checked at once (422 naming the field), then run by the daemon.
/// A refusal is audited with the experiment's name, when the body got that far.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<(StatusCode, Json<Experiment>), ApiError> {
    let mut name = None;
    let result = start(&state, caller, req, &mut name).await;
    if let Err(e) = &result {
        audit::refused_experiment(name.as_deref(), caller, e.audited());
    }
    result
}

async fn start(
    state: &AppState,
    caller: Caller,
    req: Request,
    name: &mut Option<String>,
) -> Result<(StatusCode, Json<Experiment>), ApiError> {
    let (parts, req_body) = req.into_parts();
    let bytes = body::read(&parts.headers, req_body, body::MAX_SINGLE_BODY).await?;
    let spec: ExperimentSpec = body::deserialize(&bytes)?;
    drop(bytes);
    *name = Some(spec.name.clone());
    let id = state.experiments.fresh_id();
    let plan = with_env(state, true, |env| {
        plan(
            &spec,
            &id,
            state.config.max_ttl,
            probe_identity(caller),
            &|f| validate(f, env),
        )
    })?;
    let busy = |e: StartError| match e {
        StartError::Busy(..) => ApiError {
            status: StatusCode::CONFLICT,
            error: e.to_string(),
            field: Some("faults".into()),
        },
        StartError::TooMany => ApiError::new(StatusCode::CONFLICT, e.to_string()),
    };
    // Another experiment on the same faults is named as such, before its faults are met.
    state.experiments.check(&spec, &plan).map_err(busy)?;
    // Faults that could not go in are refused now, not after the steady state was probed:
    // two of its own with one match (422), or one an installed fault holds (409).
    state
        .table
        .check_conflicts(plan.faults.clone())
        .await
        .map_err(conflict)?;
    let view = state
        .experiments
        .start(id, spec, plan, state.table.clone(), caller)
        .map_err(busy)?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A conflict found before the start, in the experiment's terms: the field is
/// `faults[i].match` (or `.match.cidrs[j]`).
fn conflict(e: FaultError) -> ApiError {
    let index = match &e {
        FaultError::Conflict {
            index, existing, ..
        } => Some((*index, existing.is_none())),
        _ => None,
    };
    let mut api = ApiError::from(e);
    if let Some((i, within)) = index {
        api.field = api.field.map(|f| format!("faults[{i}].{f}"));
        if within {
            api.status = StatusCode::UNPROCESSABLE_ENTITY;
            api.error = api
                .error
                .replace("earlier in this batch", "earlier in this experiment");
        }
    }
    api
}

/// `GET /v1/experiments`: every experiment still known, oldest first.
pub async fn list(State(state): State<Arc<AppState>>) -> Json<Vec<Experiment>> {
    Json(state.experiments.list())
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no experiment with id {}", id.escape_default()),
    )
}

/// `GET /v1/experiments/{id}`.
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Experiment>, ApiError> {
    let id = super::faults::id_of(path)?;
    state
        .experiments
        .get(&id)
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

/// `DELETE /v1/experiments/{id}`: stops it (faults lifted) and answers with its final state.
pub async fn stop(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Experiment>, ApiError> {
    let id = super::faults::id_of(path)?;
    state
        .experiments
        .stop(&id)
        .await
        .map(Json)
        .ok_or_else(|| not_found(&id))
}
