//! The `retentiond` binary: parse the command line, set up logging, call into the library,
//! and turn the outcome into an exit code.

mod cli;

use clap::Parser;
use cli::{AuditCommand, Cli, Command, ExportFormat, LogFormat, PlanFormat, ReportFormat};
use retentiond::app::{self, Exit};
use retentiond::audit::export;
use retentiond::report::document::Format;
use std::process::ExitCode;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Under systemd, journald stamps every line itself.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    match (format, journald) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).init(),
        (LogFormat::Text, false) => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Failure.code());
        }
    };
    let path = cli.config.as_path();
    let exit = runtime.block_on(async {
        match &cli.command {
            Command::Check => app::check(path).await,
            Command::Plan { at, format } => {
                app::plan(path, at.as_deref(), matches!(format, PlanFormat::Json)).await
            }
            Command::Run { once: true, rules, confirm } => app::run_once(path, rules, *confirm).await,
            Command::Run { once: false, rules, confirm } if !rules.is_empty() || confirm.is_some() => {
                eprintln!("error: --rule and --confirm only work with --once; the daemon always runs every rule within its limits");
                Exit::Usage
            }
            Command::Holds => app::holds(path).await,
            Command::Run { once: false, .. } => app::run_daemon(path).await,
            Command::Audit {
                command: AuditCommand::Verify,
            } => app::audit_verify(path).await,
            Command::Audit {
                command:
                    AuditCommand::Export {
                        since,
                        until,
                        format,
                    },
            } => {
                let format = match format {
                    ExportFormat::Jsonl => export::Format::Jsonl,
                    ExportFormat::Csv => export::Format::Csv,
                };
                app::audit_export(path, since.as_deref(), until.as_deref(), format).await
            }
            Command::Report(args) => {
                let format = match args.format {
                    ReportFormat::Text => Format::Text,
                    ReportFormat::Json => Format::Json,
                    ReportFormat::Html => Format::Html,
                };
                app::report(path, args.run.as_deref(), args.date.as_deref(), format).await
            }
            Command::Demo { dir } => app::demo(dir.as_deref()).await,
        }
    });
    ExitCode::from(exit.code())
}
