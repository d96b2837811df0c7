//! How long-running work (a pass, an erasure, `audit verify`) says how far it is, without
//! knowing who listens: a progress bar at a terminal, `STATUS=` under systemd, or nobody.
//! The library only calls [`Progress`]; drawing and notifying live with the caller.

use std::sync::Arc;

/// Receives the progress of one piece of work, in stages (a rule, a subject, the trail),
/// each counting records. Called between batches, never inside one; implementations must
/// be cheap and must not fail the work (they swallow their own errors).
pub trait Progress: Send + Sync {
    /// A stage begins: `what` it is (a rule's name, "audit trail"), and how many records it
    /// has to do, when that is known.
    fn begin(&self, what: &str, total: Option<u64>);
    /// `records` more are done in the current stage.
    fn advance(&self, records: u64);
    /// The current stage is over (done, stopped or failed).
    fn finish(&self);
}

/// Nobody listens: the default for every caller that shows no progress (tests, pipes,
/// the demo).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// A shared handle to a [`Progress`], so that options structs stay `Clone`, `Debug` and
/// `Default` (silent) and a listener can cross into a blocking thread.
#[derive(Clone)]
pub struct Reporter(Arc<dyn Progress>);

impl Reporter {
    /// Reports to `progress`.
    pub fn new(progress: impl Progress + 'static) -> Reporter {
        Reporter(Arc::new(progress))
    }

    /// Reports to several listeners at once (a terminal bar and systemd).
    pub fn all(listeners: Vec<Reporter>) -> Reporter {
        Reporter::new(Fanout(listeners))
    }

    /// The listener, to pass down as `&dyn Progress`.
    pub fn get(&self) -> &dyn Progress {
        self.0.as_ref()
    }
}

impl Default for Reporter {
    fn default() -> Reporter {
        Reporter::new(Silent)
    }
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporter")
    }
}

struct Fanout(Vec<Reporter>);

impl Progress for Fanout {
    fn begin(&self, what: &str, total: Option<u64>) {
        self.0.iter().for_each(|r| r.get().begin(what, total));
    }
    fn advance(&self, records: u64) {
        self.0.iter().for_each(|r| r.get().advance(records));
    }
    fn finish(&self) {
        self.0.iter().for_each(|r| r.get().finish());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Progress for Arc<Log> {
        fn begin(&self, what: &str, total: Option<u64>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("begin {what} {total:?}"));
        }
        fn advance(&self, records: u64) {
            self.0.lock().unwrap().push(format!("advance {records}"));
        }
        fn finish(&self) {
            self.0.lock().unwrap().push("finish".into());
        }
    }

    #[test]
    fn every_listener_of_a_fanout_hears_every_call_in_order() {
        let (a, b) = (Arc::new(Log::default()), Arc::new(Log::default()));
        let r = Reporter::all(vec![Reporter::new(a.clone()), Reporter::new(b.clone())]);
        r.get().begin("rule", Some(3));
        r.get().advance(2);
        r.get().finish();
        let want = vec!["begin rule Some(3)", "advance 2", "finish"];
        assert_eq!(*a.0.lock().unwrap(), want);
        assert_eq!(*b.0.lock().unwrap(), want);
    }
}
