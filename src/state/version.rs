//! What makes a state what it is, whichever store keeps it: the schema version this build
//! writes, and the hash the chain starts from.

/// The state schema this build writes (`PRAGMA user_version`). 0 is a database from before
/// versions were recorded (the same schema as 1); 2 added the `request` of audit entries
/// and intents (data-subject erasures) and the outcomes of requests; 3 stores the trail
/// compactly (`layout`: shared fields once per batch, binary hashes) behind a view `audit`
/// that reads as schema 2's table did.
pub const SCHEMA_VERSION: i64 = 3;

/// `prev_hash` of the first entry: what the hash chain starts from (`audit::chain`), and
/// what the `audit` view shows as the first entry's `prev_hash`.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
