//! Optional Prometheus metrics (`[daemon] metrics_listen`): what was acted on, what failed,
//! and when the last (successful) pass ran, so that a sysadmin can alert on
//! `time() - retentiond_last_success_timestamp_seconds > 172800`.
//!
//! The endpoint is HTTP/1.1 (hyper) with limits, because it faces whoever can reach the port
//! and must never be able to stop enforcement: at most 16 connections at once (more are
//! answered 503 and closed at once), 2 s to send the request head, 5 s per connection, one
//! request per connection, and a 100 ms pause after a failed accept instead of a busy loop.

use crate::engine::outcome::{RuleStatus, RunSummary};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

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
    requests_open: Gauge,
    requests_overdue: Gauge,
    active: Gauge,
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
            requests_open: Gauge::default(),
            requests_overdue: Gauge::default(),
            active: Gauge::default(),
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
        registry.register(
            "retentiond_requests_open",
            "Open data-subject requests",
            m.requests_open.clone(),
        );
        registry.register(
            "retentiond_requests_overdue",
            "Open data-subject requests past their due date (alert on > 0)",
            m.requests_overdue.clone(),
        );
        registry.register(
            "retentiond_active",
            "1 while this instance holds the lease and runs passes, 0 while it waits as a standby",
            m.active.clone(),
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

    /// The register's state: open requests, and how many of them are past their due date.
    pub fn record_requests(&self, open: usize, overdue: usize) {
        self.requests_open
            .set(i64::try_from(open).unwrap_or(i64::MAX));
        self.requests_overdue
            .set(i64::try_from(overdue).unwrap_or(i64::MAX));
    }

    /// Whether this instance is the one that acts (it holds the lease) or a standby.
    pub fn set_active(&self, active: bool) {
        self.active.set(i64::from(active));
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

    /// Serves `GET /metrics` on `listener` until the process ends, within `LIMITS`: a client
    /// that connects and says nothing, sends slowly, or opens connections by the hundred costs
    /// at most `LIMITS.connections` file descriptors for a few seconds, never the enforcement
    /// passes' descriptors or a CPU.
    pub fn serve(self, listener: TcpListener) {
        tokio::spawn(self.accept_loop(listener, LIMITS));
    }

    /// The answer to one request: the metrics for `GET /metrics`, 404 for anything else.
    fn respond<B>(&self, req: &Request<B>) -> Response<String> {
        if req.method() == Method::GET && req.uri().path() == "/metrics" {
            text(StatusCode::OK, self.render())
        } else {
            text(
                StatusCode::NOT_FOUND,
                "retentiond serves GET /metrics only\n".to_owned(),
            )
        }
    }

    /// Accepts connections until the process ends. An accept error (EMFILE, ENFILE, ENOBUFS…)
    /// is logged once per burst and retried after `limits.backoff`, so it cannot spin a CPU;
    /// a connection beyond `limits.connections` is closed at once, so it holds no descriptor.
    async fn accept_loop<L: Listen>(self, listener: L, limits: Limits) {
        let open = Arc::new(AtomicUsize::new(0));
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header)
            .keep_alive(false)
            .max_buf_size(MAX_REQUEST_BYTES);
        let (mut failing, mut refused) = (false, 0u64);
        loop {
            let stream = match std::future::poll_fn(|cx| listener.poll_accept(cx)).await {
                Ok(stream) => stream,
                // The client gave up before we took its connection: nothing to wait for.
                Err(e) if per_connection(&e) => continue,
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, retry_ms = limits.backoff.as_millis() as u64,
                            "metrics endpoint cannot accept connections; retrying (enforcement goes on)");
                        failing = true;
                    }
                    tokio::time::sleep(limits.backoff).await;
                    continue;
                }
            };
            if failing {
                tracing::info!("metrics endpoint accepts connections again");
                failing = false;
            }
            let Some((slot, taken)) = Slot::take(&open, limits.connections) else {
                if refused == 0 {
                    tracing::warn!(
                        limit = limits.connections,
                        "metrics endpoint has too many connections; closing new ones until fewer"
                    );
                }
                refused += 1;
                // Best effort and never blocking: a fresh socket's send buffer is empty.
                let _ = stream.try_write(BUSY);
                continue;
            };
            // The burst is over once there is room to spare, not when one place came free.
            if refused > 0 && taken < limits.connections {
                tracing::info!(
                    refused,
                    "metrics endpoint is below its connection limit again"
                );
                refused = 0;
            }
            let me = self.clone();
            let conn = http.serve_connection(
                TokioIo::new(stream),
                service_fn(move |req| std::future::ready(Ok::<_, Infallible>(me.respond(&req)))),
            );
            tokio::spawn(async move {
                // Whatever the client does, the connection and its slot end by this deadline.
                let _ = tokio::time::timeout(limits.connection, conn).await;
                drop(slot);
            });
        }
    }
}

/// What the endpoint answers with: the text format it has always served.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The answer to a connection beyond the limit, so that Prometheus reports why.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// A request head larger than this is refused (431): `GET /metrics` needs a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// How much of the daemon the endpoint may use, in one place so that tests can shrink it.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Connections served at once; one more is closed as soon as it is accepted.
    connections: usize,
    /// Time a client has to send its whole request head (slow clients, idle connections).
    header: Duration,
    /// Time a connection may live at all, however it spends it.
    connection: Duration,
    /// Pause after a failed accept, so that a process out of descriptors does not spin.
    backoff: Duration,
}

/// The daemon's limits: a scrape takes milliseconds, so a few seconds is generous.
const LIMITS: Limits = Limits {
    connections: 16,
    header: Duration::from_secs(2),
    connection: Duration::from_secs(5),
    backoff: Duration::from_millis(100),
};

/// A response with a text body and its content type.
fn text(status: StatusCode, body: String) -> Response<String> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

/// Accept errors that concern one client's connection only, not the listener or the process.
fn per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    )
}

/// One of the `Limits::connections` places; given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A place and how many are taken with it, if fewer than `limit` were taken.
    fn take(open: &Arc<AtomicUsize>, limit: usize) -> Option<(Slot, usize)> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .ok()
        .map(|n| (Slot(open.clone()), n + 1))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where connections come from: the TCP listener, or in tests one that fails on demand.
trait Listen: Send + 'static {
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<TcpStream>>;
}

impl Listen for TcpListener {
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<TcpStream>> {
        TcpListener::poll_accept(self, cx).map_ok(|(stream, _)| stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SHORT: Limits = Limits {
        connections: 2,
        header: Duration::from_millis(300),
        connection: Duration::from_secs(2),
        backoff: Duration::from_millis(100),
    };

    /// Every `retentiond_…` name in `text`.
    fn names_in(text: &str) -> std::collections::BTreeSet<String> {
        let mut found = std::collections::BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("retentiond_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            found.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
        found
    }

    #[test]
    fn the_contrib_alerts_and_dashboard_use_only_metrics_the_daemon_exports() {
        let m = Metrics::new(Some("2026-01-01T00:00:00Z"));
        m.record_requests(1, 0);
        // Labelled families show only once they hold a sample.
        m.record_refused(&["r".to_owned()]);
        m.records
            .get_or_create(&RuleAction {
                rule: "r".into(),
                action: "delete".into(),
            })
            .inc();
        // Sample names as exposed: counters get `_total`.
        let exported: std::collections::BTreeSet<String> = m
            .render()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .flat_map(|l| {
                let mut parts = l.split_whitespace();
                let name = parts.next().unwrap_or_default().to_owned();
                match parts.next() {
                    Some("counter") => vec![format!("{name}_total")],
                    _ => vec![name],
                }
            })
            .collect();
        assert!(exported.contains("retentiond_passes_total"), "{exported:?}");
        let alerts = include_str!("../../contrib/prometheus/retentiond-alerts.yml");
        let dashboard = include_str!("../../contrib/grafana/retentiond.json");
        let json: serde_json::Value = serde_json::from_str(dashboard).expect("dashboard is JSON");
        let panels = json["panels"].as_array().expect("panels");
        assert!(panels.len() >= 5, "{} panels", panels.len());
        for (file, text) in [("alerts", alerts), ("dashboard", dashboard)] {
            let used = names_in(text);
            assert!(!used.is_empty(), "{file} uses no metric");
            let unknown: Vec<&String> = used.difference(&exported).collect();
            assert!(
                unknown.is_empty(),
                "{file} uses {unknown:?}; exported: {exported:?}"
            );
        }
        // Every alert the issue asks for is there.
        for alert in [
            "RetentiondPassFailed",
            "RetentiondNoSuccessfulPass",
            "RetentiondRequestsOverdue",
            "RetentiondAuditTrailShrank",
        ] {
            assert!(alerts.contains(&format!("alert: {alert}")), "{alert}");
        }
    }

    async fn start(limits: Limits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(Metrics::new(None).accept_loop(listener, limits));
        addr
    }

    /// Everything the server sends until it closes, or what came before a reset.
    async fn read_all(s: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn request(addr: std::net::SocketAddr, raw: &str) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(raw.as_bytes()).await.expect("write");
        read_all(&mut s).await
    }

    #[tokio::test]
    async fn get_metrics_gets_the_text_and_anything_else_404() {
        let addr = start(SHORT).await;
        let ok = request(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(
            ok.to_ascii_lowercase()
                .contains(&format!("content-type: {CONTENT_TYPE}")),
            "{ok}"
        );
        assert!(ok.contains("retentiond_passes_total 0"), "{ok}");
        for raw in [
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let r = request(addr, raw).await;
            assert!(r.starts_with("HTTP/1.1 404"), "{raw:?}: {r}");
        }
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_refused_and_idle_ones_closed() {
        let addr = start(SHORT).await;
        let mut idle = Vec::new();
        for _ in 0..SHORT.connections {
            idle.push(TcpStream::connect(addr).await.expect("connect"));
        }
        // Let the server take both before the next one knocks.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        let refused = request(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        assert!(!refused.contains("200 OK"), "{refused}");
        // The idle ones end at the header timeout, not at the connection's.
        for s in &mut idle {
            assert_eq!(read_all(s).await, "");
        }
        assert!(t.elapsed() < SHORT.header * 2, "{:?}", t.elapsed());
        // Their places are free again.
        let ok = request(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    }

    struct Failing(Arc<AtomicU32>);

    impl Listen for Failing {
        fn poll_accept(&self, _: &mut Context<'_>) -> Poll<std::io::Result<TcpStream>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Err(std::io::Error::other(
                "Too many open files (os error 24)",
            )))
        }
    }

    #[tokio::test]
    async fn a_failing_accept_backs_off_instead_of_spinning() {
        let calls = Arc::new(AtomicU32::new(0));
        let task = tokio::spawn(Metrics::new(None).accept_loop(Failing(calls.clone()), SHORT));
        tokio::time::sleep(Duration::from_millis(550)).await;
        task.abort();
        let n = calls.load(Ordering::Relaxed);
        assert!((1..=7).contains(&n), "{n} accepts in 550 ms");
    }
}
