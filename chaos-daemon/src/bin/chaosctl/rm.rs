//! `chaosctl rm ID… | --all`.

use chaos_daemon::spec::Removed;
use hyper::Method;
use serde_json::json;

use crate::output::{Ctx, EXIT_REFUSED, EXIT_USAGE, segment};

/// Runs `rm`.
pub async fn run(ids: &[String], all: bool, ctx: &Ctx) -> i32 {
    if all {
        return match ctx
            .fetch::<Removed>(Method::DELETE, "/v1/faults", None)
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
        eprintln!("chaosctl rm: give fault ids, or --all to remove every fault");
        return EXIT_USAGE;
    }
    let mut code = 0;
    for id in ids {
        let path = format!("/v1/faults/{}", segment(id));
        match ctx.call(Method::DELETE, &path, None).await {
            Ok(_) if ctx.json => println!("{}", json!({"removed": id})),
            Ok(_) => println!("removed {}", id.escape_default()),
            Err(c) if c == EXIT_REFUSED => code = c,
            Err(c) => return c,
        }
    }
    code
}
