//! The checker behind `audit verify`, whichever store the trail is read from: entries
//! arrive in chunks ([`Chunk`], filled by `verify` from `state.db` or by `verify_postgres`
//! from PostgreSQL), are re-hashed on a thread of their own, and the first one that was
//! altered, removed or reordered is named ([`Verdict`]).

use super::chain::{digest_of_parts, matches};
use crate::progress::Progress;
use crate::state::StateError;
use std::sync::mpsc;

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry is intact and in order.
    Intact {
        /// Number of entries.
        entries: i64,
        /// The head hash (anchor it in reports).
        head: String,
    },
    /// The first bad entry, and what is wrong with it.
    Broken {
        /// The entry's position (as stored).
        seq: i64,
        /// Plain explanation.
        reason: String,
    },
}

/// Entries per chunk handed from the reader to the checker.
pub(crate) const CHUNK: usize = 8192;

/// Chunks the reader may run ahead of the checker.
pub(super) const IN_FLIGHT: usize = 4;

/// Text columns of an entry, in the order they are read (`request` last: NULL for every
/// entry but an erasure's).
pub(super) const TEXTS: usize = 11;

/// A chunk of stored entries, read into one buffer: per-field strings would make the
/// allocator, not SQLite or SHA-256, the bottleneck. Fields stay bytes as stored: they are
/// hashed as they are on disk, so nothing needs decoding.
pub(super) struct Chunk {
    pub(super) bytes: Vec<u8>,
    /// Per entry: `seq`, where each text field ends in `bytes`, and whether its
    /// `request` is set (NULL and empty differ: an empty request is still hashed).
    pub(super) entries: Vec<(i64, [usize; TEXTS], bool)>,
    /// Read from the compact layout (schema 3), where `prev_hash` is the stored hash of
    /// the entry before: a mismatch may then come from that entry having been replaced.
    compact: bool,
}

/// One entry of a chunk: `seq`, the hashed fields after it (in hash order, ending with
/// `prev_hash`), and the stored hash.
pub(super) struct View<'a> {
    seq: i64,
    parts: [&'a [u8]; TEXTS - 2],
    hash: &'a [u8],
    request: Option<&'a [u8]>,
}

impl Chunk {
    pub(super) fn new(compact: bool) -> Self {
        Chunk {
            bytes: Vec::with_capacity(CHUNK * 320),
            entries: Vec::with_capacity(CHUNK),
            compact,
        }
    }

    /// Entry `i`. Columns are read as `at, run_id, rule, database, tbl, action, key,
    /// legal_basis, hash, prev_hash, request`.
    fn entry(&self, i: usize) -> View<'_> {
        let (seq, ends, has_request) = self.entries[i];
        let start = if i == 0 {
            0
        } else {
            self.entries[i - 1].1[TEXTS - 1]
        };
        let field = |n: usize| {
            let from = if n == 0 { start } else { ends[n - 1] };
            &self.bytes[from..ends[n]]
        };
        View {
            seq,
            parts: [
                field(0),
                field(1),
                field(2),
                field(3),
                field(4),
                field(5),
                field(6),
                field(7),
                field(9),
            ],
            hash: field(8),
            request: has_request.then(|| field(10)),
        }
    }
}

/// The verdict on a trail read in two halves (`first` from entry 1, `second` from the
/// middle to the recorded head `head_seq`), with `past_head` entries stored after the head.
pub(super) fn judge(
    first: Result<Segment, StateError>,
    second: Result<Segment, StateError>,
    head_seq: i64,
    head_hash: &str,
    past_head: i64,
) -> Result<Verdict, StateError> {
    let first = first?;
    let (count, last) = match first.outcome {
        Checked::Broken { seq, reason } => return Ok(Verdict::Broken { seq, reason }),
        Checked::Intact { count, last } => (count, last),
    };
    let second = second?;
    let (count, last) = match (second.first, second.outcome) {
        (None, _) => (count, last),
        (Some((seq, prev_hash)), outcome) => {
            // The seam: the second half must continue exactly where the first ended.
            if seq != count + 1 {
                return Ok(Verdict::Broken {
                    seq,
                    reason: gap(count + 1, seq),
                });
            }
            if prev_hash != last {
                return Ok(Verdict::Broken {
                    seq,
                    reason: UNLINKED.into(),
                });
            }
            match outcome {
                Checked::Broken { seq, reason } => return Ok(Verdict::Broken { seq, reason }),
                Checked::Intact { count, last } => (count, last),
            }
        }
    };
    let last = String::from_utf8_lossy(&last).into_owned();
    if count != head_seq || last != head_hash {
        return Ok(Verdict::Broken {
            seq: count + 1,
            reason: format!(
                "the trail ends at entry {count} but its recorded head is entry {head_seq}: entries were removed from the end"
            ),
        });
    }
    if past_head > 0 {
        return Ok(Verdict::Broken {
            seq: head_seq + 1,
            reason: format!(
                "{past_head} entries follow the recorded head (entry {head_seq}): they were added outside retentiond"
            ),
        });
    }
    Ok(Verdict::Intact {
        entries: count,
        head: last,
    })
}

pub(super) fn gap(expected: i64, found: i64) -> String {
    format!("expected entry {expected} but found entry {found}: entries before it were removed or reordered")
}

pub(super) const UNLINKED: &str = "its prev_hash does not match the hash of the entry before it: an entry was removed, inserted or reordered";

/// What one half of the trail holds.
pub(super) struct Segment {
    /// Its first entry's `seq` and `prev_hash`, when it starts without a predecessor.
    first: Option<(i64, Vec<u8>)>,
    outcome: Checked,
}

/// Checks the entries `read` sends, in order, reading on this thread and hashing on
/// another. `prev` is the hash the first entry must link to, or `None` to take
/// whatever it links to (checked by the caller) — and then `from` is not enforced either.
pub(super) fn segment(
    read: impl FnOnce(mpsc::SyncSender<Chunk>) -> Result<(), StateError>,
    from: i64,
    prev: Option<Vec<u8>>,
    progress: &dyn Progress,
) -> Result<Segment, StateError> {
    let (tx, rx) = mpsc::sync_channel::<Chunk>(IN_FLIGHT);
    std::thread::scope(|scope| {
        let checker = scope.spawn(move || check(rx, from, prev, progress));
        let read = read(tx);
        let segment = checker
            .join()
            .map_err(|_| StateError::Io("the audit checker thread panicked".into()))?;
        if matches!(segment.outcome, Checked::Intact { .. }) {
            // Stopped early, the reader only saw the checker hang up.
            read?;
        }
        Ok(segment)
    })
}

/// What a checker found.
pub(super) enum Checked {
    /// Entries up to `count` are intact; `last` is the hash of entry `count` (or the
    /// starting hash, when there were none).
    Intact {
        count: i64,
        last: Vec<u8>,
    },
    Broken {
        seq: i64,
        reason: String,
    },
}

/// Checks chunks in order: numbering, links, and each entry's own hash.
fn check(
    rx: mpsc::Receiver<Chunk>,
    from: i64,
    prev: Option<Vec<u8>>,
    progress: &dyn Progress,
) -> Segment {
    let mut first = None;
    let mut expected_seq = from;
    let mut prev = prev;
    for chunk in rx {
        for i in 0..chunk.entries.len() {
            let e = chunk.entry(i);
            let link = e.parts[TEXTS - 3];
            if prev.is_none() {
                first = Some((e.seq, link.to_vec()));
                expected_seq = e.seq;
            }
            let broken = |reason: String| Segment {
                first: first.clone(),
                outcome: Checked::Broken { seq: e.seq, reason },
            };
            if let Some(p) = &prev {
                if e.seq != expected_seq {
                    return broken(gap(expected_seq, e.seq));
                }
                if link != p.as_slice() {
                    return broken(UNLINKED.into());
                }
            }
            if !matches(e.hash, &digest_of_parts(e.seq, e.parts, e.request)) {
                return broken(if chunk.compact && e.seq > 1 {
                    format!("its contents do not match its hash: entry {} was altered, or entry {} before it was replaced (its stored hash is part of this one's)", e.seq, e.seq - 1)
                } else {
                    "its contents do not match its hash: the entry was altered".into()
                });
            }
            let p = prev.get_or_insert_with(Vec::new);
            p.clear();
            p.extend_from_slice(e.hash);
            expected_seq += 1;
        }
        progress.advance(chunk.entries.len() as u64);
    }
    Segment {
        first,
        outcome: Checked::Intact {
            count: expected_seq - 1,
            last: prev.unwrap_or_default(),
        },
    }
}
