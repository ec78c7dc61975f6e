//! Which faults a `GET` or `DELETE /v1/faults` applies to: `?name=N&label=k=v&label=k2=v2`
//! (every condition must hold). Percent-encoded as in any URL query. A parameter nobody knows
//! is refused, never ignored: ignoring it would widen a narrow delete into the panic button.

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::FaultSpec;

/// Longest label key or value, in bytes.
const MAX_LABEL_LEN: usize = 63;

/// Whether `key=value` is a label a fault can carry, as Kubernetes spells them (letters,
/// digits, `-`, `_`, `.`; keys may carry a `/` prefix), so they read the same in a URL, a log
/// line and a metrics label; the reason if not. A selector naming any other label could never
/// match, so it is refused like a bad label on a new fault.
pub fn check_label(key: &str, value: &str) -> Result<(), String> {
    let ok = |s: &str, extra: &[char]| {
        s.len() <= MAX_LABEL_LEN
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || extra.contains(&c))
    };
    if let Some(k) = key.strip_suffix('!') {
        return Err(format!(
            "{k}!={value}: only KEY=VALUE is supported (every label given must match)"
        ));
    }
    if key.is_empty() || !ok(key, &['/']) {
        return Err(format!(
            "label key {:?} must be 1–{MAX_LABEL_LEN} letters, digits, '-', '_', '.' or '/'",
            key.escape_default().to_string()
        ));
    }
    if !ok(value, &[]) {
        return Err(format!(
            "label value {:?} must be at most {MAX_LABEL_LEN} letters, digits, '-', '_' or '.'",
            value.escape_default().to_string()
        ));
    }
    Ok(())
}

/// A fault selection; empty selects every fault.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// The fault's `name`.
    pub name: Option<String>,
    /// Labels the fault must carry, with these values.
    pub labels: Vec<(String, String)>,
}

/// A query that does not parse: the parameter and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorError {
    /// The offending parameter.
    pub param: String,
    /// What is wrong, in words.
    pub message: String,
}

fn decode(s: &str) -> Result<String, SelectorError> {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| SelectorError {
            param: s.escape_default().to_string(),
            message: "query parameters must be UTF-8".into(),
        })
}

impl Selector {
    /// Parses a request's query (`None`: no `?` at all, which selects everything).
    pub fn parse(query: Option<&str>) -> Result<Selector, SelectorError> {
        let mut sel = Selector::default();
        let Some(query) = query else {
            return Ok(sel);
        };
        let err = |param: &str, message: String| SelectorError {
            param: param.escape_default().to_string(),
            message,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (key, value) = (decode(key)?, decode(value)?);
            match key.as_str() {
                "name" if sel.name.is_some() => {
                    return Err(err("name", "name given twice".into()));
                }
                "name" if value.is_empty() => {
                    return Err(err("name", "name= needs a value".into()));
                }
                "name" => sel.name = Some(value),
                "label" => match value.split_once('=') {
                    Some((k, v)) => {
                        check_label(k, v).map_err(|m| err("label", m))?;
                        sel.labels.push((k.into(), v.into()));
                    }
                    None => {
                        return Err(err(
                            "label",
                            format!("label must be KEY=VALUE (got {value:?})"),
                        ));
                    }
                },
                other => {
                    return Err(err(
                        other,
                        format!(
                            "unknown query parameter {other:?}: the selectors are name= and label=KEY=VALUE"
                        ),
                    ));
                }
            }
        }
        if sel.is_empty() {
            // "?" alone must not turn a delete that meant to narrow into the panic button.
            return Err(err(
                "",
                "empty query: give name= or label=KEY=VALUE, or no \"?\" at all to select every fault"
                    .into(),
            ));
        }
        Ok(sel)
    }

    /// True if it selects every fault.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.labels.is_empty()
    }

    /// Whether `spec` is selected.
    pub fn matches(&self, spec: &FaultSpec) -> bool {
        self.name
            .as_ref()
            .is_none_or(|n| spec.name.as_ref() == Some(n))
            && self
                .labels
                .iter()
                .all(|(k, v)| spec.labels.get(k) == Some(v))
    }

    /// The query string (without `?`) that selects the same faults; "" for every fault.
    pub fn to_query(&self) -> String {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let mut parts = Vec::new();
        if let Some(n) = &self.name {
            parts.push(format!("name={}", enc(n)));
        }
        for (k, v) in &self.labels {
            parts.push(format!("label={}", enc(&format!("{k}={v}"))));
        }
        parts.join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: Option<&str>, labels: &[(&str, &str)]) -> FaultSpec {
        let mut s: FaultSpec = serde_json::from_str(
            r#"{"match":{"cidr":"10.0.0.1"},"action":{"kind":"blackhole"},"ttl":"1m"}"#,
        )
        .unwrap();
        s.name = name.map(str::to_string);
        s.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s
    }

    #[test]
    fn selectors_narrow_and_round_trip() {
        let sel = Selector::parse(Some(
            "name=redis%20loss&label=team%3Dpayments&label=env=prod",
        ))
        .unwrap();
        assert_eq!(sel.name.as_deref(), Some("redis loss"));
        assert_eq!(
            sel.labels,
            vec![
                ("team".into(), "payments".into()),
                ("env".into(), "prod".into())
            ]
        );
        let both = [("team", "payments"), ("env", "prod")];
        assert!(sel.matches(&spec(Some("redis loss"), &both)));
        assert!(!sel.matches(&spec(Some("redis loss"), &both[..1])));
        assert!(!sel.matches(&spec(Some("other"), &both)));
        assert_eq!(Selector::parse(Some(&sel.to_query())).unwrap(), sel);
        assert!(Selector::parse(None).unwrap().is_empty());
        assert!(Selector::parse(None).unwrap().matches(&spec(None, &[])));
    }

    #[test]
    fn unknown_empty_and_malformed_queries_are_refused() {
        for (q, param) in [
            ("names=x", "names"),
            ("id=1", "id"),
            ("", ""),
            ("&", ""),
            ("name=", "name"),
            ("name=a&name=b", "name"),
            ("label=team", "label"),
            ("label==x", "label"),
            ("name=%FF", "%FF"),
        ] {
            assert_eq!(Selector::parse(Some(q)).unwrap_err().param, param, "{q}");
        }
    }
}
