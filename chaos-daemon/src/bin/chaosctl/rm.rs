//! `chaosctl rm ID-OR-PREFIX… | --name N | -l KEY=VALUE… | --all`.

use chaos_daemon::spec::{Fault, Removed, Selector};
use hyper::Method;
use serde_json::json;

use crate::{
    ls::faults_path,
    output::{Ctx, EXIT_REFUSED, EXIT_USAGE, segment},
};

/// Runs `rm`.
pub async fn run(ids: &[String], sel: &Selector, all: bool, ctx: &Ctx) -> i32 {
    if all || !sel.is_empty() {
        return match ctx
            .fetch::<Removed>(Method::DELETE, &faults_path(sel), None)
            .await
        {
            Ok(Some(r)) => {
                println!("removed {} fault(s)", r.removed);
                0
            }
            Ok(None) => 0,
            Err(code) => code,
        };
    }
    if ids.is_empty() {
        eprintln!(
            "chaosctl rm: give fault ids (or unique prefixes), --name, -l KEY=VALUE, or --all to remove every fault"
        );
        return EXIT_USAGE;
    }
    let known = match ctx
        .fetch::<Vec<Fault>>(Method::GET, "/v1/faults", None)
        .await
    {
        Ok(Some(f)) => f,
        Ok(None) => Vec::new(),
        Err(code) => return code,
    };
    let mut code = 0;
    for given in ids {
        let id = match resolve(given, &known) {
            Ok(id) => id,
            Err(msg) => {
                eprintln!("chaosctl rm: {msg}");
                code = EXIT_REFUSED;
                continue;
            }
        };
        let path = format!("/v1/faults/{}", segment(&id));
        match ctx.call(Method::DELETE, &path, None).await {
            Ok(_) if ctx.json => println!("{}", json!({"removed": id})),
            Ok(_) => println!("removed {}", id.escape_default()),
            Err(c) if c == EXIT_REFUSED => code = c,
            Err(c) => return c,
        }
    }
    code
}

/// The one fault id `given` is or begins, among `known`.
fn resolve(given: &str, known: &[Fault]) -> Result<String, String> {
    if known.iter().any(|f| f.id == given) {
        return Ok(given.to_string());
    }
    let matching: Vec<&str> = known
        .iter()
        .map(|f| f.id.as_str())
        .filter(|id| !given.is_empty() && id.starts_with(given))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(format!(
            "no fault id is or begins with {:?}",
            given.escape_default().to_string()
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
    use super::*;

    fn fault(id: &str) -> Fault {
        serde_json::from_value(json!({
            "id": id, "created_at": "2026-12-02T00:00:00Z", "expires_at": "2026-12-02T00:01:00Z",
            "remaining_ms": 60000, "counters": {"matched": 0, "matched_bytes": 0, "affected": 0},
            "spec": {"match": {"cidr": "10.0.0.1"}, "action": {"kind": "blackhole"}, "ttl": "1m"}
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
        assert_eq!(resolve("aa", &known).unwrap(), "aa0000000001");
        assert_eq!(resolve("3f9c", &known).unwrap(), "3f9c2a1b7d04");
        assert!(resolve("3f9", &known).unwrap_err().contains("ambiguous"));
        assert!(resolve("ff", &known).unwrap_err().contains("no fault"));
        assert!(resolve("", &known).is_err());
    }
}
