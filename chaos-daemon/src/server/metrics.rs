//! `GET /metrics`: Prometheus text.

use std::sync::Arc;

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use super::{ApiError, AppState};

/// `GET /metrics`.
pub async fn get(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let faults = state.table.list().await?;
    let text = state.metrics.render(&faults);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
