//! The `retentiond` binary: parse the command line, set up logging and the signal stream,
//! call the command, print its error if any, and turn the outcome into an exit code. The
//! only place in the program that prints to stderr or chooses an exit code.

mod cli;
mod generate;
mod logging;
mod terminal;

use clap::Parser;
use cli::{
    AnswerFormat, AnswerLang, AuditCommand, Cli, Command, ExportFormat, PlanFormat, RegisterFormat,
    ReportFormat, RequestCommand, RequestFormat, RequestKind, RulesCommand, StateCommand,
};
use retentiond::commands::{
    self, audit, check, demo, holds, plan, register, report, request, rules, run, state,
};
use retentiond::commands::{CommandError, OnStop, Status};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Generate { out } = &cli.command {
        return match generate::write(out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&CommandError::runtime(format!(
                "cannot write the man pages and completions into {}: {e}",
                out.display()
            ))),
        };
    }
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return fail(&CommandError::runtime(format!(
                "cannot start the async runtime: {e}"
            )))
        }
    };
    let outcome = runtime.block_on(dispatch(&cli));
    // The runtime is dropped without waiting for idle tasks (the signal stream).
    runtime.shutdown_background();
    match outcome {
        Ok(status) => ExitCode::from(status.exit_code()),
        Err(e) => fail(&e),
    }
}

/// Prints `e` for the user and returns its exit code. A reader that went away (`audit
/// export | head`) is no error worth a message: the process ends quietly, with the status a
/// shell gives a process SIGPIPE ended (141).
fn fail(e: &CommandError) -> ExitCode {
    if let CommandError::Output(io) = e {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::from(141);
        }
    }
    let text = e.to_string();
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "error: {text}");
    if !text.ends_with('\n') {
        let _ = writeln!(stderr);
    }
    ExitCode::from(e.exit_code())
}

/// Runs the command `cli` names, under the signal stream.
async fn dispatch(cli: &Cli) -> Result<Status, CommandError> {
    let path = cli.config.as_path();
    let mut signals = retentiond::signal::listen()
        .map_err(|e| CommandError::runtime(format!("cannot listen for signals: {e}")))?;
    let mut stdout = std::io::stdout().lock();
    let out = &mut stdout;
    let s = &mut signals;
    match &cli.command {
        Command::Check => {
            commands::under_signals(s, OnStop::Abandon, |_| check::check(path, out)).await
        }
        Command::Plan { at, format } => {
            let format = match format {
                PlanFormat::Text => plan::Format::Text,
                PlanFormat::Json => plan::Format::Json,
            };
            commands::under_signals(s, OnStop::Abandon, |_| {
                plan::plan(path, at.as_deref(), format, out)
            })
            .await
        }
        Command::Run {
            once: true,
            rules,
            confirm,
        } => {
            commands::under_signals(s, OnStop::Finish, |stop| {
                run::once(path, rules, *confirm, stop, terminal::reporter(), out)
            })
            .await
        }
        Command::Run {
            once: false,
            rules,
            confirm,
        } if !rules.is_empty() || confirm.is_some() => Err(CommandError::Usage(
            "--rule and --confirm only work with --once; the daemon always runs every rule within its limits".into(),
        )),
        Command::Run { once: false, .. } => run::daemon(path, s).await,
        Command::Rules {
            command: Some(RulesCommand::Unlock { name, reason }),
            ..
        } => {
            commands::under_signals(s, OnStop::Abandon, |_| {
                rules::unlock(path, name, reason, out)
            })
            .await
        }
        Command::Rules {
            command: None,
            history,
            format,
        } => {
            let format = match format {
                RequestFormat::Text => rules::Format::Text,
                RequestFormat::Json => rules::Format::Json,
            };
            commands::under_signals(s, OnStop::Abandon, |_| {
                rules::rules(path, *history, format, out)
            })
            .await
        }
        Command::Register { format, lang } => {
            let format = match format {
                RegisterFormat::Html => register::Format::Html,
                RegisterFormat::Md => register::Format::Markdown,
                RegisterFormat::Csv => register::Format::Csv,
                RegisterFormat::Json => register::Format::Json,
            };
            let lang = lang.map(|l| match l {
                AnswerLang::En => retentiond::config::Language::En,
                AnswerLang::Nl => retentiond::config::Language::Nl,
            });
            commands::under_signals(s, OnStop::Abandon, |_| {
                register::register(path, format, lang, out)
            })
            .await
        }
        Command::Holds => {
            commands::under_signals(s, OnStop::Abandon, |_| holds::holds(path, out)).await
        }
        Command::Audit {
            command: AuditCommand::Verify { anchor },
        } => {
            commands::under_signals(s, OnStop::Abandon, |_| {
                audit::verify_trail(path, anchor.as_deref(), terminal::reporter(), out)
            })
            .await
        }
        Command::Audit {
            command:
                AuditCommand::Export {
                    since,
                    until,
                    format,
                },
        } => {
            let format = match format {
                ExportFormat::Jsonl => audit::ExportFormat::Jsonl,
                ExportFormat::Csv => audit::ExportFormat::Csv,
            };
            commands::under_signals(s, OnStop::Abandon, |_| {
                audit::export_trail(path, since.as_deref(), until.as_deref(), format, out)
            })
            .await
        }
        Command::Report(args) => {
            let format = match args.format {
                ReportFormat::Text => report::Format::Text,
                ReportFormat::Json => report::Format::Json,
                ReportFormat::Html => report::Format::Html,
            };
            let which = match (&args.run, &args.date) {
                (Some(id), _) => report::Which::Run(id),
                (None, Some(d)) => report::Which::Date(d),
                (None, None) => report::Which::Last,
            };
            commands::under_signals(s, OnStop::Abandon, |_| {
                report::report(path, which, format, out)
            })
            .await
        }
        Command::Request {
            command:
                RequestCommand::Erase {
                    id,
                    matches,
                    confirm,
                    format,
                },
        } => {
            let format = match format {
                RequestFormat::Text => request::Format::Text,
                RequestFormat::Json => request::Format::Json,
            };
            commands::under_signals(s, OnStop::Finish, |stop| {
                let progress = terminal::reporter();
                request::erase::erase(path, id, matches, *confirm, format, stop, progress, out)
            })
            .await
        }
        Command::Request { command } => {
            commands::under_signals(s, OnStop::Abandon, |_| request_verb(path, command, out))
                .await
        }
        Command::State {
            command: StateCommand::Migrate { to },
        } => {
            commands::under_signals(s, OnStop::Abandon, |_| state::migrate(path, to, out)).await
        }
        Command::Generate { .. } => Err(CommandError::Usage(
            "internal: generate runs before the runtime starts".into(),
        )),
        Command::Demo { dir } => {
            commands::under_signals(s, OnStop::Finish, |stop| {
                demo::demo(dir.as_deref(), stop, out)
            })
            .await
        }
    }
}

/// Runs one `request` verb.
async fn request_verb(
    path: &std::path::Path,
    command: &RequestCommand,
    out: commands::Out<'_>,
) -> Result<Status, CommandError> {
    let format = |f: &RequestFormat| match f {
        RequestFormat::Text => request::Format::Text,
        RequestFormat::Json => request::Format::Json,
    };
    match command {
        RequestCommand::New {
            kind,
            received,
            reference,
            matches,
            format: f,
        } => {
            let kind = match kind {
                RequestKind::Access => retentiond::engine::requests::Kind::Access,
                RequestKind::Erasure => retentiond::engine::requests::Kind::Erasure,
            };
            let new = request::NewRequest {
                kind,
                received: received.as_deref(),
                reference: reference.as_deref(),
                matches,
            };
            request::new(path, new, format(f), out).await
        }
        RequestCommand::Find {
            id,
            matches,
            format: f,
        } => request::find(path, id, matches, format(f), out).await,
        RequestCommand::Export {
            id,
            matches,
            out: dir,
        } => request::export(path, id, matches, dir, out).await,
        RequestCommand::List { format: f } => request::list(path, format(f), out).await,
        RequestCommand::Extend { id, reason } => request::extend(path, id, reason, out).await,
        RequestCommand::Close { id } => request::close(path, id, out).await,
        RequestCommand::Answer { id, format, lang } => {
            let format = match format {
                AnswerFormat::Text => request::answer::Format::Text,
                AnswerFormat::Html => request::answer::Format::Html,
            };
            let lang = lang.map(|l| match l {
                AnswerLang::En => retentiond::config::Language::En,
                AnswerLang::Nl => retentiond::config::Language::Nl,
            });
            request::answer::answer(path, id, format, lang, out).await
        }
        RequestCommand::Erase { .. } => Err(CommandError::Usage(
            "internal: request erase is dispatched with its stop signal".into(),
        )),
    }
}
