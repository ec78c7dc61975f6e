//! `chaosctl man [--dir DIR]`: the manual. chaosctl(1), and a page per verb and kind
//! (chaosctl-add(1), chaosctl-add-loss(1) …, which the pages above them reference), each with
//! EXIT STATUS, ENVIRONMENT and FILES. Without --dir the top page goes to stdout.

use std::path::Path;

use clap::CommandFactory;

use crate::args::Cli;

/// The exit statuses of `verb` (the first word after `chaosctl`), as roff.
fn exit_status(verb: Option<&str>) -> &'static str {
    match verb {
        Some("run") => {
            ".TP\n0\nThe hypothesis held.\n.TP\n1\nDeviated: the steady state did not come back.\n\
             .TP\n2\nAborted by a stop condition.\n.TP\n3\nStopped (Ctrl\\-C, DELETE, the panic button).\n\
             .TP\n4\nNot run: invalid file, refused, daemon unreachable, or the steady state did not hold before the start (nothing injected).\n\
             .TP\n5\nThe daemon failed while running it (the faults were lifted).\n\
             .TP\n6\nCompleted but not tested: no fault affected a packet.\n\
             .TP\n7\nThe daemon became unreachable while it ran (its faults end with the daemon, or at their TTL).\n"
        }
        Some("exec") => {
            ".TP\nN\nThe command's own exit status (128+N for a signal N).\n\
             .TP\n2\nUsage error, values of bad syntax included.\n\
             .TP\n125\nThe faults could not be set up (the message names the flag).\n\
             .TP\n126\nThe command was found but could not be run.\n.TP\n127\nThe command was not found.\n"
        }
        _ => {
            ".TP\n0\nSuccess.\n\
             .TP\n1\nThe daemon refused the request; the message names the flag (and the API field).\n\
             .TP\n2\nUsage error, values of bad syntax included (caught before the daemon is asked).\n\
             .TP\n3\nThe daemon is unreachable, or its socket is not accessible (use sudo, or join the socket's group).\n\
             .PP\n\\fBchaosctl run\\fR and \\fBchaosctl exec\\fR have exit statuses of their own: see chaosctl\\-run(1) and chaosctl\\-exec(1).\n"
        }
    }
}

const ENVIRONMENT: &str = ".TP\nCHAOS_SOCKET\nThe daemon's socket, as \\-\\-socket.\n";
const FILES: &str = ".TP\n/run/chaos\\-daemon/chaos.sock\nThe daemon's socket (mode 0660, group \\fBchaos\\fR).\n\
    .TP\n/etc/chaos\\-daemon/config.toml\nThe daemon's configuration (socket, socket_group, max_ttl, protected paths).\n";

/// The page of `cmd` (already named `chaosctl-…`), with the sections clap does not write.
fn page(cmd: clap::Command, verb: Option<&str>) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    for (title, body) in [
        ("EXIT STATUS", exit_status(verb)),
        ("ENVIRONMENT", ENVIRONMENT),
        ("FILES", FILES),
    ] {
        out.extend_from_slice(format!(".SH \"{title}\"\n{body}").as_bytes());
    }
    Ok(out)
}

/// Every page: (file name, roff), the top page first.
fn pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut all = vec![("chaosctl.1".to_string(), page(Cli::command(), None)?)];
    // (page name, the verb it belongs to, the command)
    let mut todo: Vec<(String, String, clap::Command)> = Cli::command()
        .get_subcommands()
        .map(|c| {
            (
                format!("chaosctl-{}", c.get_name()),
                c.get_name().to_string(),
                c.clone(),
            )
        })
        .collect();
    while let Some((name, verb, cmd)) = todo.pop() {
        if cmd.is_hide_set() || cmd.get_name() == "help" {
            continue;
        }
        for sub in cmd.get_subcommands() {
            todo.push((
                format!("{name}-{}", sub.get_name()),
                verb.clone(),
                sub.clone(),
            ));
        }
        // The page's title and the pages it references come from the display name; the
        // synopsis from the bin name ("chaosctl add loss").
        let cmd = cmd
            .display_name(name.clone())
            .bin_name(name.replace('-', " "));
        let roff = page(cmd, Some(&verb))?;
        all.push((format!("{name}.1"), roff));
    }
    Ok(all)
}

/// Runs `man`.
pub fn run(dir: Option<&Path>) -> i32 {
    let written = pages().and_then(|pages| match dir {
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&pages[0].1)
        }
        Some(d) => pages
            .iter()
            .try_for_each(|(name, roff)| std::fs::write(d.join(name), roff)),
    });
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("chaosctl: cannot write the man pages: {e}");
            crate::output::EXIT_REFUSED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_the_manual_references_exists_with_its_sections() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for verb in [
            "add", "add-loss", "add-dns", "ls", "get", "update", "rm", "run", "exec", "status",
        ] {
            assert!(
                names.contains(&format!("chaosctl-{verb}.1").as_str()),
                "{verb}: {names:?}"
            );
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("help") || n.contains("-man")),
            "{names:?}"
        );
        for (name, roff) in &pages {
            let text = String::from_utf8_lossy(roff);
            for section in ["EXIT STATUS", "ENVIRONMENT", "FILES"] {
                assert!(
                    text.contains(&format!(".SH \"{section}\"")),
                    "{name}: {section}"
                );
            }
            // Each page another references is there.
            for referenced in text.split("chaosctl\\-").skip(1) {
                let page: String = referenced
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '\\')
                    .collect::<String>()
                    .replace("\\-", "-");
                if let Some(p) = page.strip_suffix("(1") {
                    assert!(
                        names.contains(&format!("chaosctl-{p}.1").as_str()),
                        "{name} references {p}"
                    );
                }
            }
        }
        let run = &pages.iter().find(|(n, _)| n == "chaosctl-run.1").unwrap().1;
        assert!(String::from_utf8_lossy(run).contains("not tested"));
    }
}
