//! The one place where domain errors become HTTP statuses. Every error answer is JSON:
//! `{"error": "...", "field": "match.port"}`.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::{
    faults::FaultError,
    loader,
    spec::ErrorBody,
    validate::{Refusal, ValidationError},
};

/// An error answer: status, message, offending field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: StatusCode,
    /// Message for the client.
    pub error: String,
    /// JSON path of the offending field.
    pub field: Option<String>,
}

impl ApiError {
    /// Any status, no field.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            field: None,
        }
    }

    /// 400 for `field`.
    pub fn bad_request(field: impl Into<String>, error: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            field: Some(field.into()),
        }
    }

    /// This answer as the audit line of the refused request records it.
    pub fn audited(&self) -> crate::audit::Refusal<'_> {
        crate::audit::Refusal {
            status: self.status.as_u16(),
            error: &self.error,
            field: self.field.as_deref(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.error,
                field: self.field,
            }),
        )
            .into_response()
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError {
            status: match e.kind {
                Refusal::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                Refusal::Protected => StatusCode::CONFLICT,
                Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            },
            error: e.message,
            field: e.field,
        }
    }
}

impl From<FaultError> for ApiError {
    fn from(e: FaultError) -> Self {
        let (status, field) = match &e {
            FaultError::NotFound(_) => (StatusCode::NOT_FOUND, None),
            FaultError::Conflict { entry, .. } => (
                StatusCode::CONFLICT,
                Some(entry.map_or("match".to_string(), |i| format!("match.cidrs[{i}]"))),
            ),
            FaultError::LimitReached { .. } => (StatusCode::CONFLICT, None),
            FaultError::InterfaceNotFound(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Some("interface".into()))
            }
            FaultError::ShuttingDown | FaultError::DeadmanTripped => {
                (StatusCode::SERVICE_UNAVAILABLE, None)
            }
            FaultError::Loader(loader::Error::Invalid(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Some("match".into()))
            }
            FaultError::Loader(loader::Error::Full(_)) => (StatusCode::CONFLICT, None),
            FaultError::Loader(loader::Error::Qdisc(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Some("interface".into()))
            }
            FaultError::Internal(_) | FaultError::Loader(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
        };
        ApiError {
            status,
            error: e.to_string(),
            field,
        }
    }
}
