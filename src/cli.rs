//! The command line: clap definitions only. `main.rs` maps them onto `retentiond::commands`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// retentiond keeps your written data-retention promises: it deletes, anonymizes or flags
/// records whose retention has ended, every night, and proves it in a tamper-evident
/// audit trail.
#[derive(Debug, Parser)]
#[command(name = "retentiond", version, about, long_about = None)]
pub struct Cli {
    /// The config file.
    #[arg(long, global = true, env = "RETENTIOND_CONFIG", default_value = retentiond::config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Log format on stderr: text for people, json for log shippers. Default: text, or,
    /// under systemd, journald's native format (every field queryable: journalctl RULE=…).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config, connect to every database, check every table and column a rule
    /// names (and that each key is unique), and print how many records each rule would act
    /// on now. Changes nothing. Exit 78 on a config error, 1 if a database is unreachable.
    Check,
    /// Dry run: per rule, how many records (and the first few keys) it would act on at a
    /// moment — now, or a date to come ("what goes at the end of the month?"). Changes nothing.
    Plan {
        /// The moment: RFC 3339 (2026-12-31T23:00:00Z) or a date (2026-12-31, midnight in the
        /// configured timezone). Default: now.
        #[arg(long)]
        at: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: PlanFormat,
    },
    /// Enforce the rules. With --once: one pass now, then the summary, then exit (1 if any
    /// rule failed). Without: run as a daemon, a pass on every tick of [daemon] schedule,
    /// until SIGTERM or SIGINT.
    Run {
        /// One pass now, then exit.
        #[arg(long)]
        once: bool,
        /// Only this rule (repeat for several). Default: all rules.
        #[arg(long = "rule", value_name = "NAME")]
        rules: Vec<String>,
        /// Let one rule (--rule NAME) past its mass-deletion brake, acting on exactly N
        /// records: the count `plan` or the brake's message showed. If the rule matches a
        /// different number now, nothing is done.
        #[arg(long, value_name = "N", requires = "rules")]
        confirm: Option<u64>,
    },
    /// List the legal holds ([[hold]]): whether each is in force, how many records it
    /// covers, and how many of those it keeps from each rule now.
    Holds,
    /// The rules in force, each with the fingerprint of its enforced definition; with
    /// --history, every rule-start, rule-change and rule-end the trail holds, with dates.
    /// `rules unlock NAME --reason TEXT` lets a locked rule change once.
    Rules {
        #[command(subcommand)]
        command: Option<RulesCommand>,
        /// Every start, change and end of every rule, from the audit trail.
        #[arg(long)]
        history: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: RequestFormat,
    },
    /// The record of processing activities (GDPR art. 30) and the retention paragraph of
    /// the privacy statement, written from the rules and subjects actually enforced.
    Register {
        /// html: a printable page; md: Markdown; csv: one row per processing; json.
        #[arg(long, value_enum, default_value = "html")]
        format: RegisterFormat,
        /// The language. Default: the config's report_language.
        #[arg(long, value_enum)]
        lang: Option<AnswerLang>,
    },
    /// The audit trail: verify it, export it.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the summary of a pass: the last one, or one by id.
    Report(ReportArgs),
    /// Data-subject requests (GDPR art. 15 and 17): the register, with an answer due one
    /// calendar month after a request was received. The person's identity (--match) is
    /// kept only as a keyed tag, never in clear.
    Request {
        #[command(subcommand)]
        command: RequestCommand,
    },
    /// Where the state (run history, intents, audit trail) is kept: `state migrate --to URL`
    /// moves it from state_dir/state.db into PostgreSQL.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Build a small realistic SQLite data set (HR, CRM, bookkeeping) and a config for it,
    /// run one pass, and print what happened and where the files are. Needs no server.
    Demo {
        /// Where to put the demo (must be new or empty). Default: a new directory under the
        /// system's temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Write the man pages (DIR/man) and the bash, zsh and fish completions
    /// (DIR/completions) from these definitions; used to build the .deb.
    #[command(hide = true)]
    Generate {
        /// The directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `audit` verbs.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole trail: exit 0 only if no entry was altered, removed or reordered,
    /// and it agrees with every head recorded outside it (the run history, the anchors in
    /// each reachable target database, and --anchor); otherwise name the first bad entry
    /// or disagreement and exit 1.
    Verify {
        /// A head hash printed in a report or mailed (the "audit trail … head hash" line):
        /// the trail must still hold that entry. Fails if the trail was rewritten or cut
        /// at or below it.
        #[arg(long, value_name = "HASH")]
        anchor: Option<String>,
    },
    /// Write the trail to stdout, oldest first.
    Export {
        /// Only entries at or after this moment (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Only entries before this moment (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        until: Option<String>,
        /// jsonl: one JSON object per line; csv: with a header row.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

/// `state` verbs.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy state_dir/state.db into an empty PostgreSQL state (for [daemon] state_url), in
    /// one transaction, then verify both trails and compare their heads. Refuses a target
    /// that already holds a state. Exit 0 only if both verify alike.
    Migrate {
        /// The PostgreSQL database to move the state into (postgres://user@host:5432/db).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

/// `request` verbs.
#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Register a request; prints its id and the date the answer is due.
    New {
        /// access (art. 15) or erasure (art. 17).
        #[arg(long, value_enum)]
        kind: RequestKind,
        /// The day it was received (YYYY-MM-DD). Default: today, in [daemon] timezone.
        #[arg(long, value_name = "YYYY-MM-DD")]
        received: Option<String>,
        /// Your reference (a ticket or letter number; not the person's name).
        #[arg(long, value_name = "TEXT")]
        reference: Option<String>,
        /// The person's identity, as an attribute some [[subject]] identifies people by
        /// (repeatable): --match email=jane@example.org. Binds the request to this person.
        #[arg(long = "match", value_name = "ATTR=VALUE")]
        matches: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: RequestFormat,
    },
    /// Where the person is: per [[subject]], the keys of their records. Changes nothing.
    /// Binds the request to this identity if it had none; refuses other values.
    Find {
        /// The request's id (REQ-YYYY-NNNN).
        id: String,
        /// The person's identity (repeatable): --match email=jane@example.org.
        #[arg(long = "match", value_name = "ATTR=VALUE", required = true)]
        matches: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: RequestFormat,
    },
    /// The access package (art. 15): the person's rows with each table's purpose, legal
    /// basis and retention, as DIR/package.json and DIR/package.html.
    Export {
        /// The request's id (REQ-YYYY-NNNN).
        id: String,
        /// The person's identity (repeatable): --match email=jane@example.org.
        #[arg(long = "match", value_name = "ATTR=VALUE", required = true)]
        matches: Vec<String>,
        /// A new or empty directory for the package.
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
    },
    /// Erase the person's records (art. 17): per [[subject]] delete, anonymize or keep
    /// (keep_reason), in audited batches, children before parents. Legal holds and
    /// keep_while win and are listed as kept with their reason. Every record erased gets
    /// one audit entry carrying the request's id.
    Erase {
        /// The request's id (REQ-YYYY-NNNN).
        id: String,
        /// The person's identity (repeatable): --match email=jane@example.org.
        #[arg(long = "match", value_name = "ATTR=VALUE", required = true)]
        matches: Vec<String>,
        /// Past the brake (more than 100 records, more than one person usually has): the
        /// exact number of records the erasure acts on, as its message showed. A different
        /// number now does nothing.
        #[arg(long, value_name = "N")]
        confirm: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: RequestFormat,
    },
    /// The letter to the person (art. 12): what was found (categories and counts), what
    /// was erased, what is kept, why and until when, and how to complain.
    Answer {
        /// The request's id (REQ-YYYY-NNNN).
        id: String,
        /// html: a printable page; text: plain text.
        #[arg(long, value_enum, default_value = "text")]
        format: AnswerFormat,
        /// The letter's language. Default: [report] language.
        #[arg(long, value_enum)]
        lang: Option<AnswerLang>,
    },
    /// The open requests: overdue first, then by due date, with the days left.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: RequestFormat,
    },
    /// Extend a request's deadline by two months, once, saying why (art. 12(3)).
    Extend {
        /// The request's id (REQ-YYYY-NNNN).
        id: String,
        /// Why: the request's complexity or the number of requests.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Close a request once it is answered.
    Close {
        /// The request's id (REQ-YYYY-NNNN).
        id: String,
    },
}

/// Kinds of data-subject request.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RequestKind {
    /// The right of access (art. 15).
    Access,
    /// The right to erasure (art. 17).
    Erasure,
}

/// `request` output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RequestFormat {
    /// Lines for people.
    Text,
    /// JSON.
    Json,
}

/// `rules` verbs.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Allow exactly one change to a locked rule (removing it, shortening expires.after, or
    /// changing its table, since or action) at the next pass; recorded in the audit trail.
    Unlock {
        /// The rule's name.
        name: String,
        /// Why the locked rule may change (a new law, a decision of the DPO).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

/// `register` formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RegisterFormat {
    /// A self-contained, printable HTML page.
    Html,
    /// Markdown.
    Md,
    /// CSV, one row per processing activity.
    Csv,
    /// JSON.
    Json,
}

/// `request answer` formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AnswerFormat {
    /// Plain text, for an e-mail.
    Text,
    /// A self-contained, printable HTML page.
    Html,
}

/// Languages of the answer letter.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AnswerLang {
    /// English.
    En,
    /// Dutch.
    Nl,
}

/// `report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The last finished pass (the default).
    #[arg(long, conflicts_with = "run")]
    pub last: bool,
    /// A pass by id (as in the audit trail's run_id).
    #[arg(long, conflicts_with = "date")]
    pub run: Option<String>,
    /// The last pass on this date (YYYY-MM-DD, in the configured timezone).
    #[arg(long, conflicts_with = "last")]
    pub date: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

/// `plan` formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlanFormat {
    /// A table for people.
    Text,
    /// `{"at": …, "rules": [{"rule", "action", "count", …}]}`.
    Json,
}

/// `audit export` formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// JSON Lines.
    Jsonl,
    /// CSV.
    Csv,
}

/// `report` formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    /// Plain text.
    Text,
    /// JSON.
    Json,
    /// A self-contained HTML page.
    Html,
}
