//! `chaosctl rm ID-OR-PREFIX… | --name N | -l KEY=VALUE… | --all`.

use chaos_daemon::spec::{Fault, Removed, Selector};
use hyper::Method;
use serde_json::json;

use crate::{
    find,
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
        let id = match find::id(given, &known) {
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
