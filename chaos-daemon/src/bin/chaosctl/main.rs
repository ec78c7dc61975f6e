//! `chaosctl`: command-line client of chaos-daemon. See `chaosctl --help`.
//! One file per verb; [`args`] is the command line, [`output`] the exit codes and messages.

mod add;
mod args;
mod exec;
mod find;
mod get;
mod ls;
mod man;
mod output;
mod rm;
mod run;
mod status;
mod table;
mod toml_line;
mod update;

use clap::{CommandFactory, Parser};

use crate::{
    args::{Cli, Cmd},
    output::Ctx,
};

fn main() {
    // A closed pipe (`chaosctl ls | head -1`) ends the process quietly, as it does for other
    // command-line tools, instead of a "Broken pipe" panic.
    // SAFETY: restoring the default disposition of a signal has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Cmd::Completions { shell } = &cli.cmd {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "chaosctl",
            &mut std::io::stdout(),
        );
        return;
    }
    if let Cmd::Man { dir } = &cli.cmd {
        std::process::exit(man::run(dir.as_deref()));
    }
    let ctx = Ctx {
        client: chaos_daemon::client::Client::new(&cli.socket),
        json: cli.json,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async {
        match &cli.cmd {
            Cmd::Add { kind } => add::run(kind, &ctx).await,
            Cmd::Ls {
                select,
                sort_by,
                quiet,
                output,
                watch,
                interval,
            } => {
                let view = ls::View {
                    order: *sort_by,
                    quiet: *quiet,
                    output: *output,
                    every: watch.then(|| {
                        humantime::parse_duration(interval).expect("checked by the parser")
                    }),
                };
                ls::run(&select.selector(), &view, &ctx).await
            }
            Cmd::Get { fault, output } => get::run(fault, *output, &ctx).await,
            Cmd::Update(args) => update::run(args, &ctx).await,
            Cmd::Rm { ids, select, all } => rm::run(ids, &select.selector(), *all, &ctx).await,
            Cmd::Exec(args) => exec::run(args, &ctx).await,
            Cmd::Run { file, junit } => run::run(file, junit.as_deref(), &ctx).await,
            Cmd::Status => status::run(&cli.socket, &ctx).await,
            Cmd::Completions { .. } | Cmd::Man { .. } => unreachable!("handled above"),
        }
    });
    std::process::exit(code);
}
