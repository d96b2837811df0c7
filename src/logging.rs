//! Where the binary's logs go: natively to journald under systemd (every field a journal
//! field: `journalctl RULE=…`), else text (or JSON) on stderr, coloured only for a person
//! at a terminal. An explicit `--log-format` always wins.

use crate::cli::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// journald's native protocol: fields stay fields.
    Journald,
    /// Lines on stderr.
    Text {
        /// Colour codes (only at a terminal).
        ansi: bool,
        /// Timestamps (journald stamps lines itself).
        time: bool,
    },
    /// One JSON object per line on stderr.
    Json,
}

/// Whether stderr is connected to the journal: systemd sets `JOURNAL_STREAM` to the
/// `device:inode` of the stream it hands a service, and a stderr that still has that
/// device and inode was not redirected (systemd.exec(5), "$JOURNAL_STREAM").
pub fn journald_wanted(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let (Some(value), Some((dev, ino))) = (journal_stream, stderr) else {
        return false;
    };
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    matches!((d.parse::<u64>(), i.parse::<u64>()), (Ok(d), Ok(i)) if d == dev && i == ino)
}

/// The sink for an explicit `--log-format` (if any), whether stderr is the journal and
/// whether it is a terminal.
pub fn choose(explicit: Option<LogFormat>, journal: bool, terminal: bool) -> Sink {
    match explicit {
        Some(LogFormat::Json) => Sink::Json,
        None if journal => Sink::Journald,
        Some(LogFormat::Text) | None => Sink::Text {
            ansi: terminal && !journal,
            time: !journal,
        },
    }
}

/// stderr's device and inode, if it has them.
fn stderr_id() -> Option<(u64, u64)> {
    let st = rustix::fs::fstat(std::io::stderr()).ok()?;
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// Sets up logging for the whole process (`RUST_LOG` filters; default `info`).
pub fn init(explicit: Option<LogFormat>) {
    let journal = journald_wanted(std::env::var("JOURNAL_STREAM").ok().as_deref(), stderr_id());
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let sink = choose(explicit, journal, std::io::stderr().is_terminal());
    if sink == Sink::Journald {
        // No prefix: `rule` becomes RULE=, not F_RULE=.
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(None)
                    .with_syslog_identifier("retentiond".into());
                tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .init();
                return;
            }
            // No journald socket after all (a container without one): text, as before.
            Err(_) => return text(filter(), false, false),
        }
    }
    match sink {
        Sink::Json => tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(false)
            .with_writer(crate::terminal::StderrAroundBar)
            .json()
            .init(),
        Sink::Text { ansi, time } => text(filter(), ansi, time),
        Sink::Journald => {}
    }
}

fn text(filter: tracing_subscriber::EnvFilter, ansi: bool, time: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(crate::terminal::StderrAroundBar);
    if time {
        builder.init();
    } else {
        builder.without_time().init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journald_only_when_stderr_is_the_stream_systemd_handed_over() {
        assert!(journald_wanted(Some("8:12345"), Some((8, 12345))));
        assert!(journald_wanted(Some("8:12345\n"), Some((8, 12345))));
        // Inherited by a child whose stderr was redirected to a file or a pipe.
        assert!(!journald_wanted(Some("8:12345"), Some((8, 999))));
        assert!(!journald_wanted(Some("8:12345"), Some((9, 12345))));
        assert!(!journald_wanted(None, Some((8, 12345))));
        assert!(!journald_wanted(Some("8:12345"), None));
        assert!(!journald_wanted(Some("garbage"), Some((8, 12345))));
        assert!(!journald_wanted(Some(""), Some((0, 0))));
    }

    #[test]
    fn an_explicit_log_format_wins_over_the_journal() {
        assert_eq!(choose(Some(LogFormat::Json), true, false), Sink::Json);
        assert_eq!(
            choose(Some(LogFormat::Text), true, false),
            Sink::Text {
                ansi: false,
                time: false
            }
        );
        assert_eq!(choose(None, true, false), Sink::Journald);
    }

    #[test]
    fn colour_only_at_a_terminal_and_never_into_the_journal() {
        assert_eq!(
            choose(None, false, true),
            Sink::Text {
                ansi: true,
                time: true
            }
        );
        assert_eq!(
            choose(None, false, false),
            Sink::Text {
                ansi: false,
                time: true
            }
        );
        assert_eq!(
            choose(Some(LogFormat::Text), true, true),
            Sink::Text {
                ansi: false,
                time: false
            }
        );
    }
}
