//! Why a spec was refused, in domain terms; the server turns each kind into a status.

/// A refused spec. `field` is the JSON path of the offending field (`match.port`, `[3].ttl`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// Why it was refused.
    pub kind: Refusal,
    /// JSON path of the offending field, if one is to blame.
    pub field: Option<String>,
    /// What is wrong and, where possible, what to do.
    pub message: String,
}

/// The kinds of refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A value out of range or not supported.
    Invalid,
    /// The fault would hit a protected path and `force` is not set.
    Protected,
    /// A safety rail could not be evaluated (e.g. the SSH session list could not be read), so
    /// the fault is refused rather than let through unchecked.
    Unavailable,
}

impl ValidationError {
    /// An invalid value of `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            kind: Refusal::Invalid,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// Prefixes the field path (for items of a batch: `[3].ttl`).
    pub fn at(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            self.field = Some(match self.field {
                Some(f) => format!("{prefix}.{f}"),
                None => prefix.to_string(),
            });
        }
        self
    }
}
