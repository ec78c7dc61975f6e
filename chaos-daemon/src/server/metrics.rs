//! `GET /metrics`: the Prometheus text format, or OpenMetrics when the scraper asks for it.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};

use super::{ApiError, AppState};
use crate::metrics::Format;

/// `GET /metrics`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let scrape = state.table.scrape().await?;
    let text = state.metrics.render(&scrape, format);
    Ok(([(header::CONTENT_TYPE, format.content_type())], text).into_response())
}
