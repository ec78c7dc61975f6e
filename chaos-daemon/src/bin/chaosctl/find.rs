//! Finding the one fault a user means, alike for `get`, `update` and `rm`: an exact id first,
//! then a unique name, then a unique id prefix; an ambiguous name or prefix is refused.

use chaos_daemon::spec::Fault;

/// The id of the one fault `given` is, is named, or begins, among `known`.
pub fn id(given: &str, known: &[Fault]) -> Result<String, String> {
    if known.iter().any(|f| f.id == given) {
        return Ok(given.to_string());
    }
    {
        let named: Vec<&str> = known
            .iter()
            .filter(|f| f.spec.name.as_deref() == Some(given))
            .map(|f| f.id.as_str())
            .collect();
        match named.as_slice() {
            [one] => return Ok(one.to_string()),
            [] => {}
            many => {
                return Err(format!(
                    "{} faults are named {:?}: {} (give an id)",
                    many.len(),
                    given.escape_default().to_string(),
                    many.join(", ")
                ));
            }
        }
    }
    let matching: Vec<&str> = known
        .iter()
        .map(|f| f.id.as_str())
        .filter(|id| !given.is_empty() && id.starts_with(given))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(format!(
            "no fault id is or begins with {:?}, and no fault has that name",
            given.escape_default().to_string(),
        )),
        many => Err(format!(
            "{:?} is ambiguous: it begins {} (give more characters)",
            given.escape_default().to_string(),
            many.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fault(id: &str) -> Fault {
        serde_json::from_value(json!({
            "id": id, "spec": {"name": format!("n-{id}"), "match": {"cidr": "10.0.0.1"},
                "action": {"kind": "blackhole"}, "ttl": "1m"}, "created_at": "2026-12-02T00:00:00Z", "expires_at": "2026-12-02T00:01:00Z",
            "remaining_ms": 60000, "counters": {"matched": 0, "matched_bytes": 0, "affected": 0}
        }))
        .unwrap()
    }

    #[test]
    fn ids_resolve_by_unique_prefix() {
        let known = [
            fault("3f9c2a1b7d04"),
            fault("3f9d00000000"),
            fault("aa0000000001"),
        ];
        assert_eq!(id("aa", &known).unwrap(), "aa0000000001");
        assert_eq!(id("3f9c", &known).unwrap(), "3f9c2a1b7d04");
        assert!(id("3f9", &known).unwrap_err().contains("ambiguous"));
        assert!(id("ff", &known).unwrap_err().contains("no fault"));
        assert!(id("", &known).is_err());
        assert_eq!(id("n-aa0000000001", &known).unwrap(), "aa0000000001");
        // A name that is also another fault's id prefix: the name wins, as documented.
        let mut named_like_a_prefix = fault("bb0000000002");
        named_like_a_prefix.spec.name = Some("aa".into());
        let known = [fault("aa0000000001"), named_like_a_prefix];
        assert_eq!(id("aa", &known).unwrap(), "bb0000000002");
        let mut twin = fault("cc0000000003");
        twin.spec.name = Some("aa".into());
        let known = [known[0].clone(), known[1].clone(), twin];
        assert!(id("aa", &known).unwrap_err().contains("2 faults are named"));
    }
}
