//! Optional Prometheus metrics (`[daemon] metrics_listen`): what was acted on, what failed,
//! and when the last (successful) pass ran, so that a sysadmin can alert on
//! `time() - retentiond_last_success_timestamp_seconds > 172800`.

use crate::engine::outcome::{RuleStatus, RunSummary};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleAction {
    rule: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    rule: String,
}

type Seconds = Gauge<f64, AtomicU64>;

/// The daemon's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    records: Family<RuleAction, Counter>,
    failures: Family<RuleLabel, Counter>,
    passes: Counter,
    last_start: Seconds,
    last_end: Seconds,
    last_success: Seconds,
    duration: Seconds,
    audit_entries: Gauge,
}

fn seconds(rfc3339: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
}

impl Metrics {
    /// Registers every metric. `last_success` comes from the run history, so the alert
    /// works across restarts.
    pub fn new(last_success: Option<&str>) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            records: Family::default(),
            failures: Family::default(),
            passes: Counter::default(),
            last_start: Seconds::default(),
            last_end: Seconds::default(),
            last_success: Seconds::default(),
            duration: Seconds::default(),
            audit_entries: Gauge::default(),
        };
        registry.register(
            "retentiond_records",
            "Records acted on, by rule and action",
            m.records.clone(),
        );
        registry.register(
            "retentiond_rule_failures",
            "Rules that failed in a pass, by rule",
            m.failures.clone(),
        );
        registry.register(
            "retentiond_passes",
            "Passes run since start",
            m.passes.clone(),
        );
        registry.register(
            "retentiond_last_pass_start_timestamp_seconds",
            "Start of the last pass",
            m.last_start.clone(),
        );
        registry.register(
            "retentiond_last_pass_end_timestamp_seconds",
            "End of the last pass",
            m.last_end.clone(),
        );
        registry.register(
            "retentiond_last_success_timestamp_seconds",
            "End of the last pass in which every rule succeeded",
            m.last_success.clone(),
        );
        registry.register(
            "retentiond_last_pass_duration_seconds",
            "Duration of the last pass",
            m.duration.clone(),
        );
        registry.register(
            "retentiond_audit_entries",
            "Entries in the audit trail",
            m.audit_entries.clone(),
        );
        if let Some(t) = last_success.and_then(seconds) {
            m.last_success.set(t);
        }
        Metrics {
            registry: Arc::new(registry),
            ..m
        }
    }

    /// Counts a finished pass.
    pub fn record(&self, s: &RunSummary) {
        self.passes.inc();
        for r in &s.rules {
            self.records
                .get_or_create(&RuleAction {
                    rule: r.rule.clone(),
                    action: r.action.to_string(),
                })
                .inc_by(r.acted);
            if matches!(r.status, RuleStatus::Failed | RuleStatus::Braked) {
                self.failures
                    .get_or_create(&RuleLabel {
                        rule: r.rule.clone(),
                    })
                    .inc();
            }
        }
        let (start, end) = (seconds(&s.started_at), seconds(&s.finished_at));
        if let (Some(a), Some(b)) = (start, end) {
            self.last_start.set(a);
            self.last_end.set(b);
            self.duration.set(b - a);
            if !s.failed() {
                self.last_success.set(b);
            }
        }
        self.audit_entries.set(s.audit_entries);
    }

    /// Counts a pass that could not run at all (e.g. a rule no longer fits its table).
    pub fn record_refused(&self, rules: &[String]) {
        self.passes.inc();
        for rule in rules {
            self.failures
                .get_or_create(&RuleLabel { rule: rule.clone() })
                .inc();
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out = "# encoding failed\n".into();
        }
        out
    }

    /// Serves `GET /metrics` on `listener` until the process ends.
    pub fn serve(self, listener: TcpListener) {
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    continue;
                };
                let me = self.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut len = 0;
                    while len < buf.len() {
                        match conn.read(&mut buf[len..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => len += n,
                        }
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    let request = String::from_utf8_lossy(&buf[..len]);
                    let (status, body) =
                        match request.split_whitespace().take(2).collect::<Vec<_>>()[..] {
                            ["GET", "/metrics"] => ("200 OK", me.render()),
                            _ => (
                                "404 Not Found",
                                "retentiond serves GET /metrics only\n".to_owned(),
                            ),
                        };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(body.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
    }
}
