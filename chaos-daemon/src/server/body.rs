//! Request bodies: size limits (checked on `Content-Length` before reading, and while reading),
//! a read deadline, and JSON parsing whose errors name the field.

use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, StatusCode, header},
};
use http_body_util::BodyExt;

use super::ApiError;
use crate::spec::FaultSpec;

/// Largest body for a single object (a fault update, an experiment) other than a new fault.
pub const MAX_SINGLE_BODY: usize = 64 * 1024;
/// Largest body for a JSON array, or a new fault (its `match.cidrs` may list 100,000 networks).
pub const MAX_BATCH_BODY: usize = 8 * 1024 * 1024;
/// A body must arrive within this time: a client that stops sending cannot hold a connection.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body larger than {limit} bytes"),
    )
}

/// Reads the body within [`BODY_TIMEOUT`] and the size limits: [`MAX_BATCH_BODY`] for an array,
/// `object_limit` for an object.
pub async fn read(headers: &HeaderMap, body: Body, object_limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BATCH_BODY as u64) {
        return Err(too_large(MAX_BATCH_BODY));
    }
    let limited = http_body_util::Limited::new(body, MAX_BATCH_BODY);
    let bytes: Bytes = match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("body not received within {BODY_TIMEOUT:?}"),
            ));
        }
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(too_large(MAX_BATCH_BODY));
        }
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read body: {e}"),
            ));
        }
    };
    if first_byte(&bytes) != Some(b'[') && bytes.len() > object_limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {object_limit} bytes (only a JSON array may be larger)"),
        ));
    }
    Ok(bytes)
}

fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes.iter().find(|b| !b.is_ascii_whitespace()).copied()
}

/// Parses a body: one fault object, or an array of them (`batch == true`). Errors name the field
/// (`match.port`, `action.kind`, `[3].ttl`…).
pub fn parse_faults(bytes: &[u8]) -> Result<(Vec<FaultSpec>, bool), ApiError> {
    match first_byte(bytes) {
        Some(b'[') => {
            let specs: Vec<FaultSpec> = deserialize(bytes)?;
            if specs.is_empty() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "empty array: nothing to create",
                ));
            }
            Ok((specs, true))
        }
        Some(b'{') => Ok((vec![deserialize(bytes)?], false)),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body must be a JSON fault object or an array of them",
        )),
    }
}

pub(super) fn deserialize<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {inner}"));
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
            return ApiError::new(StatusCode::BAD_REQUEST, msg);
        }
        ApiError::bad_request(field.clone(), format!("{field}: {msg}"))
    })?;
    de.end()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_of_the_item() {
        let e = parse_faults(br#"[{"action":{"kind":"blackhole"},"ttl":"1m"},{"action":{"kind":"blackhole"},"ttl":"1m","colour":1}]"#)
            .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("[1].colour"));
        let e = parse_faults(br#"{"action":{"kind":"blackhole"}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("ttl"));
        let e = parse_faults(b"[]").unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            parse_faults(b"42").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
