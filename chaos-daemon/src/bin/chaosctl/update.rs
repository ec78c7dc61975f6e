//! `chaosctl update ID|PREFIX|NAME [--ttl T] [--percent P] [--delay D] [--jitter J] [--rate R]
//! [--response R]`: one `PATCH /v1/faults/{id}`. The flags mean what they mean for `add`.

use chaos_daemon::spec::{ActionSpec, Fault};
use hyper::Method;
use serde_json::{Value, json};

use crate::{
    args::UpdateArgs,
    get::fetch_one,
    output::{Ctx, EXIT_USAGE, segment, send_fault},
};

/// The PATCH body for `args` on `current`, or a usage error naming the flag that does not
/// apply to its kind.
pub fn patch_json(args: &UpdateArgs, current: &Fault) -> Result<Value, String> {
    let mut patch = serde_json::Map::new();
    if let Some(t) = &args.ttl {
        patch.insert("ttl".into(), json!(t));
    }
    let kind = current.spec.action.kind();
    let mut action = serde_json::to_value(&current.spec.action).expect("an action serialises");
    let mut action_changed = false;
    let mut set = |flag: &str, key: &str, value: Value, applies: bool| {
        if !applies {
            return Err(format!("{flag} does not apply to a {kind} fault"));
        }
        action[key] = value;
        action_changed = true;
        Ok(())
    };
    let latency = matches!(current.spec.action, ActionSpec::Latency { .. });
    if let Some(d) = &args.delay {
        set("--delay", "delay", json!(d), latency)?;
    }
    if let Some(j) = &args.jitter {
        set("--jitter", "jitter", json!(j), latency)?;
    }
    if let Some(r) = &args.rate {
        set("--rate", "rate", json!(r), kind == "bandwidth")?;
    }
    if let Some(r) = &args.response {
        set("--response", "response", json!(r), kind == "dns")?;
    }
    if let Some(p) = args.percent {
        // As `add`: a loss fault's --percent is its loss; any other kind's is its share.
        if kind == "loss" {
            set("--percent", "percent", json!(p), true)?;
        } else {
            patch.insert("percent".into(), json!(p));
        }
    }
    if action_changed {
        patch.insert("action".into(), action);
    }
    Ok(Value::Object(patch))
}

/// Runs `update`.
pub async fn run(args: &UpdateArgs, ctx: &Ctx) -> i32 {
    let current = match fetch_one(&args.fault, "update", ctx).await {
        Ok(f) => f,
        Err(code) => return code,
    };
    let body = match patch_json(args, &current) {
        Ok(b) => b,
        Err(msg) => {
            eprintln!("chaosctl update: {msg}\n\nFor more information, try '--help'.");
            return EXIT_USAGE;
        }
    };
    let path = format!("/v1/faults/{}", segment(&current.id));
    send_fault(
        ctx,
        Method::PATCH,
        &path,
        body.to_string().into_bytes(),
        "updated",
    )
    .await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Cmd};

    fn fault(action: Value) -> Fault {
        serde_json::from_value(json!({
            "id": "abc", "created_at": "", "expires_at": "", "remaining_ms": 1,
            "counters": {"matched": 0, "matched_bytes": 0, "affected": 0},
            "spec": {"match": {"cidr": "10.0.0.1"}, "action": action, "ttl": "1m"}
        }))
        .unwrap()
    }

    fn patch(args: &[&str], action: Value) -> Result<Value, String> {
        let mut argv = vec!["chaosctl", "update", "abc"];
        argv.extend(args);
        let Cmd::Update(u) = Cli::try_parse_from(argv).unwrap().cmd else {
            panic!("update expected")
        };
        patch_json(&u, &fault(action))
    }

    #[test]
    fn update_flags_mean_what_they_mean_for_add() {
        assert_eq!(
            patch(&["--ttl", "10m"], json!({"kind": "blackhole"})).unwrap(),
            json!({"ttl": "10m"})
        );
        assert_eq!(
            patch(
                &["--percent", "50"],
                json!({"kind": "loss", "percent": 10.0})
            )
            .unwrap(),
            json!({"action": {"kind": "loss", "percent": 50.0}})
        );
        assert_eq!(
            patch(&["--percent", "25"], json!({"kind": "blackhole"})).unwrap(),
            json!({"percent": 25.0})
        );
        let p = patch(
            &["--jitter", "5ms"],
            json!({"kind": "latency", "delay": "50ms"}),
        )
        .unwrap();
        assert_eq!(p["action"]["delay"], "50ms", "the other parameters stay");
        assert_eq!(p["action"]["jitter"], "5ms");
        let e = patch(
            &["--rate", "1mbit"],
            json!({"kind": "loss", "percent": 1.0}),
        )
        .unwrap_err();
        assert_eq!(e, "--rate does not apply to a loss fault");
    }
}
