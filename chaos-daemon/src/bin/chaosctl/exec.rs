//! `chaosctl exec [FAULT] --to CIDR… -- CMD ARGS…`: CMD runs in a cgroup of its own with the
//! faults scoped to that cgroup; they are lifted when CMD exits.

use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt, process::ExitStatusExt},
    path::{Path, PathBuf},
};

use chaos_daemon::spec::{Fault, Health};
use hyper::Method;
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    add::spec_json,
    args::{AddKind, Common, ExecArgs},
    output::{self, Ctx, bare, refused, refused_as, segment, unreachable},
};

/// chaosctl could not set the faults up (as `env` and `timeout` use 125).
pub const EXIT_SETUP: i32 = 125;
/// The command was found but could not be run.
pub const EXIT_CANNOT_RUN: i32 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

use chaos_daemon::host::cgroup::EXEC_PARENT as PARENT;

/// A cgroup made for one command; removed on drop if it is empty by then.
struct TransientCgroup {
    path: PathBuf,
    /// The same, relative to the hierarchy's root (as `/proc/PID/cgroup` shows it): what the
    /// daemon resolves in its own view of the hierarchy.
    relative: PathBuf,
}

impl TransientCgroup {
    fn create() -> Result<Self, String> {
        let (mount, _) = chaos_daemon::host::cgroup::mount().map_err(|e| {
            format!(
                "{e}; `ip netns exec` hides it: enter only the network namespace, e.g. \
                 `nsenter --net=/run/netns/NS chaosctl exec …`"
            )
        })?;
        let parent = mount.join(PARENT);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("{}-{nanos:09}", std::process::id());
        let path = parent.join(&name);
        // Another run may remove the shared parent between our two mkdirs: try again.
        let mut attempts = 0;
        loop {
            match std::fs::create_dir(&parent) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(cgroup_error(&parent, e)),
            }
            match std::fs::create_dir(&path) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(e) => return Err(cgroup_error(&path, e)),
            }
        }
        Ok(TransientCgroup {
            path,
            relative: Path::new("/").join(PARENT).join(name),
        })
    }
}

impl Drop for TransientCgroup {
    fn drop(&mut self) {
        // NotFound: the daemon saw it emptied and removed it first.
        if let Err(e) = std::fs::remove_dir(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!(
                "chaosctl exec: cgroup {} kept ({e}): processes the command left behind still \
                 run in it, without faults (the daemon removes it a minute after they exit)",
                self.path.display()
            );
        } else if let Some(parent) = self.path.parent() {
            // Shared by concurrent runs: only the last one out removes it.
            let _ = std::fs::remove_dir(parent);
        }
    }
}

fn cgroup_error(path: &Path, e: std::io::Error) -> String {
    let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
        ": run chaosctl exec with sudo (it needs write access to the cgroup tree)"
    } else {
        ""
    };
    format!("cannot create cgroup {}: {e}{hint}", path.display())
}

/// The `add` options of one fault of `args` to `to`.
fn add_kind(args: &ExecArgs, to: &str, ttl: &str) -> AddKind {
    let common = Common {
        to: vec![to.to_string()],
        from: Vec::new(),
        cgroup: None,
        ttl: ttl.to_string(),
        opts: args.opts.clone(),
    };
    if let Some(percent) = args.loss {
        AddKind::Loss { percent, common }
    } else if let Some(delay) = &args.latency {
        AddKind::Latency {
            delay: delay.clone(),
            jitter: None,
            distribution: None,
            correlation: None,
            reorder: false,
            percent: None,
            common,
        }
    } else if let Some(rate) = &args.bandwidth {
        AddKind::Bandwidth {
            rate: rate.clone(),
            common,
        }
    } else {
        AddKind::Blackhole {
            percent: None,
            common,
        }
    }
}

/// The exec flag that sets an API field: exec's kind flags carry the value (`--loss 30` is
/// `action.percent`), and the rest are `add`'s.
fn flag_of(field: &str) -> Option<&'static str> {
    match bare(field) {
        "percent" | "action.percent" => Some("--loss"),
        "action.delay" => Some("--latency"),
        "action.rate" => Some("--bandwidth"),
        "match.cidr" | "match.cidrs" => Some("--to"),
        _ => output::flag_of(field),
    }
}

/// The faults' specs: one per `--to`, each scoped to `cgroup`.
pub fn specs(args: &ExecArgs, ttl: &str, cgroup: &Path) -> Value {
    Value::Array(
        args.to
            .iter()
            .map(|to| {
                let mut spec = spec_json(&add_kind(args, to, ttl));
                spec["match"]["cgroup"] = json!(cgroup);
                spec["until_cgroup_empty"] = json!(true);
                spec
            })
            .collect(),
    )
}

/// The TTL to ask for: `--ttl`, or the daemon's `max_ttl`.
async fn ttl(args: &ExecArgs, ctx: &Ctx) -> Result<String, i32> {
    if let Some(t) = &args.ttl {
        return Ok(t.clone());
    }
    let (_, body) = ctx
        .call(Method::GET, "/v1/health", None)
        .await
        .map_err(|_| EXIT_SETUP)?;
    let health: Health = serde_json::from_slice(&body).map_err(|e| {
        eprintln!("chaosctl exec: unexpected health answer: {e}");
        EXIT_SETUP
    })?;
    Ok(humantime::format_duration(health.limits.max_ttl).to_string())
}

/// Runs `exec`.
pub async fn run(args: &ExecArgs, ctx: &Ctx) -> i32 {
    let ttl = match ttl(args, ctx).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    let cgroup = match TransientCgroup::create() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chaosctl exec: {e}");
            return EXIT_SETUP;
        }
    };
    let body = specs(args, &ttl, &cgroup.relative).to_string().into_bytes();
    let faults: Vec<Fault> = match ctx
        .client
        .request(Method::POST, "/v1/faults", Some(body))
        .await
    {
        Ok((status, body)) if (200..300).contains(&status) => match serde_json::from_slice(&body) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("chaosctl exec: unexpected answer from the daemon: {e}");
                return EXIT_SETUP;
            }
        },
        Ok((_, body)) => {
            refused_as(&body, ctx.json, Some(flag_of));
            return EXIT_SETUP;
        }
        Err(e) => {
            unreachable(&e, ctx.json);
            return EXIT_SETUP;
        }
    };
    for f in &faults {
        // The cgroup as this host's tree has it, the path every other message prints (the
        // daemon resolves it in its own mount namespace, which may mount cgroup v2 elsewhere).
        let mut spec = f.spec.clone();
        spec.matches.cgroup = Some(cgroup.path.display().to_string());
        eprintln!("chaosctl exec: {} {}", f.id, spec.summary());
    }
    let code = supervise(&args.command, &cgroup.path).await;
    lift(&faults, ctx).await;
    drop(cgroup);
    code
}

/// Runs the command in `cgroup` and waits for it; its exit code (or 126/127).
async fn supervise(command: &[std::ffi::OsString], cgroup: &Path) -> i32 {
    let Ok(procs) = CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes()) else {
        eprintln!("chaosctl exec: cgroup path holds a NUL byte");
        return EXIT_SETUP;
    };
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..]);
    // SAFETY: between fork and exec the child only calls open/write/close, which are
    // async-signal-safe, on a path prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" moves the writing process: the child, before CMD starts.
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(err);
            }
            Ok(())
        });
    }
    // Ctrl-C reaches the command from the terminal; chaosctl stays to lift the faults.
    // SIGTERM and SIGHUP sent to chaosctl are passed on.
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("chaosctl exec: cannot install signal handlers");
        return EXIT_SETUP;
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let name = command[0].to_string_lossy();
            eprintln!("chaosctl exec: cannot run {name}: {e}");
            return if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_CANNOT_RUN
            };
        }
    };
    let pid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    let forward = |sig: nix::sys::signal::Signal| {
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(pid, sig);
        }
    };
    loop {
        tokio::select! {
            status = child.wait() => {
                return match status {
                    Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
                    Err(e) => {
                        eprintln!("chaosctl exec: waiting for the command failed: {e}");
                        EXIT_CANNOT_RUN
                    }
                };
            }
            _ = int.recv() => {}
            _ = term.recv() => forward(nix::sys::signal::Signal::SIGTERM),
            _ = hup.recv() => forward(nix::sys::signal::Signal::SIGHUP),
        }
    }
}

/// Removes the faults (those the daemon already ended, at their TTL or because the cgroup
/// emptied, are fine).
async fn lift(faults: &[Fault], ctx: &Ctx) {
    for f in faults {
        let path = format!("/v1/faults/{}", segment(&f.id));
        match ctx.client.request(Method::DELETE, &path, None).await {
            Ok((status, _)) if (200..300).contains(&status) || status == 404 => {}
            Ok((_, body)) => refused(&body, ctx.json),
            Err(e) => {
                unreachable(&e, ctx.json);
                eprintln!(
                    "chaosctl exec: fault {} ends at its TTL or with the daemon",
                    f.id
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Cmd};

    #[test]
    fn refusals_name_exec_own_flags() {
        assert_eq!(flag_of("action.percent"), Some("--loss"));
        assert_eq!(flag_of("action.delay"), Some("--latency"));
        assert_eq!(flag_of("action.rate"), Some("--bandwidth"));
        assert_eq!(flag_of("match.cidrs[1]"), Some("--to"));
        // A batch item's position does not matter; add's name for the rest.
        assert_eq!(flag_of("[1].action.percent"), Some("--loss"));
        assert_eq!(flag_of("[0].match.port"), Some("--port"));
    }

    #[test]
    fn each_destination_is_one_fault_scoped_to_the_cgroup() {
        let cli = Cli::try_parse_from([
            "chaosctl",
            "exec",
            "--loss",
            "30",
            "--to",
            "10.0.0.0/8",
            "--to",
            "fd00::/64",
            "--port",
            "443",
            "--",
            "curl",
            "-s",
        ])
        .unwrap();
        let Cmd::Exec(args) = cli.cmd else {
            panic!("exec expected")
        };
        assert_eq!(args.command, ["curl", "-s"]);
        let specs = specs(&args, "1h", Path::new("/chaos-exec/7"));
        assert_eq!(specs.as_array().unwrap().len(), 2);
        assert_eq!(
            specs[1],
            json!({"direction": "egress", "ttl": "1h",
                   "match": {"cidr": "fd00::/64", "port": 443, "cgroup": "/chaos-exec/7"},
                   "action": {"kind": "loss", "percent": 30.0}, "until_cgroup_empty": true})
        );
    }
}
