//! Checks of a DNS fault's `action.domain`: an exact name or `*.suffix`.

/// Longest name in presentation form, without the trailing dot (RFC 1035: 255 bytes on the wire).
pub const MAX_NAME: usize = 253;
/// Longest label.
pub const MAX_LABEL: usize = 63;

/// A domain as the loader wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    /// Lowercase, no trailing dot, no `*.`.
    pub name: String,
    /// `*.name`: any name strictly below `name`.
    pub wildcard: bool,
}

impl Domain {
    /// The name as the API echoes it: `*.example.com` or `api.example.com`.
    pub fn spelled(&self) -> String {
        if self.wildcard {
            format!("*.{}", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// `s` in double quotes, escaped once (a Debug of an escaped string escaped it twice:
/// `"b\\u{fc}cher"`).
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.escape_default())
}

/// Parses `s`, or says what is wrong with it.
pub fn parse_domain(s: &str) -> Result<Domain, String> {
    let shown = quoted(s);
    let trimmed = s.strip_suffix('.').unwrap_or(s);
    let (rest, wildcard) = match trimmed.strip_prefix("*.") {
        Some(r) => (r, true),
        None => (trimmed, false),
    };
    if rest.is_empty() || rest == "*" {
        return Err(if wildcard || rest == "*" {
            format!("{shown}: a wildcard needs a suffix, e.g. *.example.com")
        } else {
            "the domain is empty".to_string()
        });
    }
    // A wildcard's names have at least one more label ("x.") in front of the suffix.
    let limit = if wildcard { MAX_NAME - 2 } else { MAX_NAME };
    if rest.len() > limit {
        return Err(format!(
            "{shown} is {} characters long; a name has at most {MAX_NAME}{}",
            rest.len(),
            if wildcard {
                " (a wildcard's suffix at most 251, to leave room for the label it stands for)"
            } else {
                ""
            }
        ));
    }
    for label in rest.split('.') {
        if label.is_empty() {
            return Err(format!(
                "{shown} has an empty label (two dots in a row, or a leading dot)"
            ));
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "{shown}: the label {} is {} characters long; a label has at most {MAX_LABEL}",
                quoted(label),
                label.len()
            ));
        }
        if label == "*" {
            return Err(format!(
                "{shown}: '*' may only be the first label (*.example.com), standing for any names below the rest"
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "{shown}: the label {} holds '{}'; labels are letters, digits, '-' and '_' (an internationalised name goes in its xn-- form)",
                quoted(label),
                c.escape_default()
            ));
        }
    }
    Ok(Domain {
        name: rest.to_ascii_lowercase(),
        wildcard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_wildcards_are_normalised() {
        let d = parse_domain("API.Example.com.").unwrap();
        assert_eq!((d.name.as_str(), d.wildcard), ("api.example.com", false));
        let d = parse_domain("*.DynamoDB.us-east-1.amazonaws.com").unwrap();
        assert_eq!(d.spelled(), "*.dynamodb.us-east-1.amazonaws.com");
        assert!(parse_domain("_sip._tcp.example.com").is_ok());
        assert!(parse_domain("localhost").is_ok());
        let longest = [
            &"a".repeat(63)[..],
            &"b".repeat(63),
            &"c".repeat(63),
            &"d".repeat(61),
        ]
        .join(".");
        assert!(parse_domain(&longest).is_ok());
    }

    #[test]
    fn each_defect_is_named() {
        for (bad, says) in [
            ("", "empty"),
            (".", "empty"),
            ("*", "needs a suffix"),
            ("*.", "needs a suffix"),
            ("a..b", "empty label"),
            (".a.b", "empty label"),
            ("a.*.b", "first label"),
            ("*.*.b", "first label"),
            ("ex ample.com", "holds ' '"),
            ("exämple.com", "xn--"),
            // Escaped once: "b\u{fc}cher", not "b\\u{fc}cher".
            (
                "bücher.example",
                "\"b\\u{fc}cher.example\": the label \"b\\u{fc}cher\" holds '\\u{fc}'",
            ),
            ("a/b", "holds '/'"),
            (&format!("{}.com", "x".repeat(64)), "at most 63"),
            (
                &[
                    "a".repeat(63),
                    "b".repeat(63),
                    "c".repeat(63),
                    "d".repeat(62),
                ]
                .join("."),
                "at most 253",
            ),
            (
                &format!(
                    "*.{}",
                    [
                        "a".repeat(63),
                        "b".repeat(63),
                        "c".repeat(63),
                        "d".repeat(60)
                    ]
                    .join(".")
                ),
                "251",
            ),
        ] {
            let e = parse_domain(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
