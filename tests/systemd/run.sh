#!/usr/bin/env bash
# The service proven under a real systemd, from the .deb, as a sysadmin installs it.
#
# Boots a Debian bookworm tree with systemd-nspawn (cached outside the checkout, in
# ${RETENTIOND_SYSTEMD_CACHE:-/var/cache/retentiond-test}/systemd-tree, like cargo's own
# caches, so that a fresh clone reuses it; built once with debootstrap, ~1-2 min; each run gets its own overlayfs upper layer so the cache
# stays clean), installs target/debian/retentiond_*.deb in it with dpkg, and drives the
# daemon with systemctl: start (Type=notify, READY), STATUS=, a scheduled pass, the trail
# verified as the service's dynamic user, reload (broken and good), stop mid-pass, the
# journal. Every wait is bounded; the trap removes every mount, container and file it made.
#
# Needs root, systemd-nspawn (Debian package systemd-container), debootstrap, a Debian
# mirror for the first run, python3 and sqlite3 on the host. Where nspawn cannot run at all
# it skips loudly, unless CI is set: then it fails.
#
#   bash tests/systemd/run.sh            # from the repository root
#   KEEP=1 bash tests/systemd/run.sh     # leave the container running on failure (debugging)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
START=$SECONDS

step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
step "can systemd-nspawn run here?"
why_not=""
if [ "$(id -u)" != 0 ]; then why_not="not root";
elif ! command -v systemd-nspawn >/dev/null; then why_not="systemd-nspawn missing (apt-get install systemd-container)";
elif ! command -v debootstrap >/dev/null && [ ! -e "${RETENTIOND_SYSTEMD_CACHE:-/var/cache/retentiond-test}/systemd-tree/.complete" ]; then why_not="debootstrap missing (apt-get install debootstrap)";
elif ! grep -qw overlay /proc/filesystems && ! modprobe overlay 2>/dev/null; then why_not="no overlayfs";
fi
for tool in nsenter python3 sqlite3 cargo; do
  [ -n "$why_not" ] || command -v "$tool" >/dev/null || why_not="$tool missing"
done
if [ -n "$why_not" ]; then
  if [ -n "${CI:-}" ]; then fail "the systemd test cannot run: $why_not (CI is set: this is a failure)"; fi
  echo "################################################################################"
  echo "### SKIPPED: the systemd test cannot run here: $why_not"
  echo "### The daemon was NOT tested under systemd."
  echo "################################################################################"
  exit 0
fi

# ---------------------------------------------------------------------------------------
step "build the .deb"
cargo build --release --quiet
if ! command -v cargo-deb >/dev/null && ! cargo deb --version >/dev/null 2>&1; then
  fail "cargo-deb is missing: cargo install cargo-deb"
fi
rm -f target/debian/retentiond_*.deb
# The man pages and completions the package ships, generated from the binary's clap
# definitions (contrib/gen-assets.sh); --strip as for a release (lintian wants it);
# --fast: quicker compression (a larger .deb); this one is only for the test.
sh contrib/gen-assets.sh target/release/retentiond >/dev/null
cargo deb --no-build --strip --fast --quiet >/dev/null
DEB=$(ls target/debian/retentiond_*.deb)
echo "$DEB"

# ---------------------------------------------------------------------------------------
# The cached tree: systemd to boot, procps for a sysadmin's usual tools, PostgreSQL so that
# a password reaches the daemon through LoadCredential= and is checked by a real server.
# A change of this list (the stamp) rebuilds the tree.
CACHE="${RETENTIOND_SYSTEMD_CACHE:-/var/cache/retentiond-test}"
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
TREE="$CACHE/systemd-tree"
INCLUDE="systemd,systemd-sysv,dbus,procps,postgresql-15"
if [ ! -e "$TREE/.complete" ] || [ "$(cat "$TREE/.complete")" != "$INCLUDE" ]; then
  step "build the bookworm tree (once; cached in $TREE)"
  rm -rf "$TREE" "$TREE.tmp"
  timeout 900 debootstrap --variant=minbase --include="$INCLUDE" bookworm "$TREE.tmp" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$CACHE/systemd-tree.log" 2>&1 \
    || { tail -n 20 "$CACHE/systemd-tree.log"; fail "debootstrap failed (log: $CACHE/systemd-tree.log)"; }
  rm -f "$TREE.tmp"/var/cache/apt/archives/*.deb
  echo "$INCLUDE" >"$TREE.tmp/.complete"
  mv "$TREE.tmp" "$TREE"
fi

# ---------------------------------------------------------------------------------------
step "boot the container (overlay on the cached tree)"
RUN=$(mktemp -d /tmp/retentiond-systemd.XXXXXX)
MERGED=$RUN/merged
MACHINE="retentiond-test-$$"
NSPAWN_PID=""
LEADER=""
mkdir -p "$RUN/upper" "$RUN/work" "$MERGED"

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ] && [ -n "$LEADER" ]; then
    echo "-- journal of retentiond (last 60 lines) --"
    nsenter -t "$LEADER" -a journalctl -u retentiond --no-pager -n 60 2>/dev/null
    if [ -n "${KEEP:-}" ]; then
      echo "KEEP is set: container left running (nsenter -t $LEADER -a bash; overlay $MERGED)"
      exit "$rc"
    fi
  fi
  if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    # SIGTERM to nspawn --boot: an orderly shutdown of the container; then force.
    kill -TERM "$NSPAWN_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NSPAWN_PID" 2>/dev/null
    wait "$NSPAWN_PID" 2>/dev/null
  fi
  mountpoint -q "$MERGED" && { umount "$MERGED" || umount -l "$MERGED"; }
  rm -rf "$RUN"
  echo "== cleaned up (container, overlay, $RUN)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mount -t overlay overlay -o "lowerdir=$TREE,upperdir=$RUN/upper,workdir=$RUN/work" "$MERGED"
cp "$DEB" "$MERGED/root/retentiond.deb"
# pg_createcluster picks the first free port when debootstrap configures it: 5433 if the
# host's own PostgreSQL held 5432 then. Inside the private network 5432 is free.
sed -i 's/^port = .*/port = 5432/' "$MERGED"/etc/postgresql/15/main/postgresql.conf

# The host has no D-Bus (--register=no --keep-unit); no network but loopback.
systemd-nspawn --quiet --boot --register=no --keep-unit --private-network \
  --console=passive -M "$MACHINE" -D "$MERGED" >"$RUN/console.log" 2>&1 </dev/null &
NSPAWN_PID=$!

# The container's PID 1: the process named systemd below nspawn.
for _ in $(seq 1 100); do
  for p in $(pgrep -x systemd || true); do
    q=$p
    while [ "$q" -gt 1 ]; do
      [ "$q" = "$NSPAWN_PID" ] && { LEADER=$p; break 2; }
      q=$(awk '{print $4}' "/proc/$q/stat" 2>/dev/null || echo 1)
    done
  done
  [ -n "$LEADER" ] && break
  kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$RUN/console.log"; fail "systemd-nspawn exited"; }
  sleep 0.1
done
[ -n "$LEADER" ] || fail "no systemd came up inside the container within 10 s"

# Run a command inside the container, with a clean environment.
ct() { nsenter -t "$LEADER" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

state=""
for _ in $(seq 1 60); do
  state=$(ct systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 0.5
done
case "$state" in running|degraded) echo "container: $state" ;; *) fail "container not booted within 30 s: $state" ;; esac

# ---------------------------------------------------------------------------------------
step "dpkg -i the .deb"
ct dpkg -i /root/retentiond.deb >/dev/null
ct test -x /usr/bin/retentiond
ct systemctl cat retentiond >/dev/null
[ "$(ct systemctl is-enabled retentiond 2>/dev/null || true)" = disabled ] \
  || fail "the package must install the unit without enabling it"

# ---------------------------------------------------------------------------------------
step "PostgreSQL in the container: a role with a password, for LoadCredential="
for _ in $(seq 1 60); do ct pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
ct pg_isready -h 127.0.0.1 >/dev/null || fail "PostgreSQL did not come up in the container"
DBPASS="s3cret-$RANDOM$RANDOM"
ct runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 \
  -c "CREATE ROLE retentiond LOGIN PASSWORD '$DBPASS'" -c "CREATE DATABASE hr OWNER retentiond" >/dev/null

# ---------------------------------------------------------------------------------------
step "config: SQLite under ReadWritePaths=, the PostgreSQL password as a credential"
DATA=/srv/retentiond-test
mkdir -p "$MERGED$DATA"
python3 - "$MERGED$DATA" <<'PY'
import sqlite3, sys
d = sys.argv[1]
db = sqlite3.connect(f"{d}/books.db")
db.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, ended_at TEXT)")
db.executemany("INSERT INTO sessions VALUES (?, ?)",
               [(i, "2020-01-01 00:00:00" if i <= 10 else "2099-01-01 00:00:00") for i in range(1, 31)])
db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, issued_at TEXT)")
# 1000 expired of 3000: a pass of 50 batches of 20 with 300 ms between them (~15 s).
db.executemany("INSERT INTO invoices VALUES (?, ?)",
               [(i, "2010-01-01 00:00:00" if i <= 1000 else "2099-01-01 00:00:00") for i in range(1, 3001)])
db.commit()
PY
# The service runs as a dynamic user whose UID is not known before its first start. A site
# would give it the directory through a group or an ACL; here the directory and database
# are simply writable by all (the test data is not secret).
chmod 0777 "$MERGED$DATA"
chmod 0666 "$MERGED$DATA/books.db"

printf '%s' "$DBPASS" >"$MERGED/etc/retentiond/dbpass"
chmod 0600 "$MERGED/etc/retentiond/dbpass"
mkdir -p "$MERGED/etc/systemd/system/retentiond.service.d"
# What a site writes with `systemctl edit retentiond`.
cat >"$MERGED/etc/systemd/system/retentiond.service.d/site.conf" <<EOF
[Service]
LoadCredential=dbpass:/etc/retentiond/dbpass
ReadWritePaths=$DATA
EOF

# The hr database is declared but no rule uses it: `retentiond check` (ExecStartPre=)
# connects to every database, so the service starts only if the password read from
# password_file = the credential is accepted by PostgreSQL (scram-sha-256 on 127.0.0.1).
write_config() { # $1: the invoices rule too (yes/no)
  cat <<EOF
[daemon]
state_dir = "/var/lib/retentiond"
schedule = "*/5 * * * * *"
timezone = "UTC"
report_language = "en"

[databases.books]
url = "sqlite://$DATA/books.db"

[databases.hr]
url = "postgres://retentiond@127.0.0.1:5432/hr"
password_file = "/run/credentials/retentiond.service/dbpass"
connect_timeout = "5 s"

[[rule]]
name = "stale-sessions"
legal_basis = "test: sessions are kept 30 days"
database = "books"
table = "sessions"
key = "id"
expires = { since = "ended_at", after = "30 days" }
action = "delete"
max_fraction = 1.0
EOF
  if [ "$1" = yes ]; then
    cat <<EOF

[[rule]]
name = "old-invoices"
legal_basis = "test: invoices are kept 7 years"
database = "books"
table = "invoices"
key = "id"
expires = { since = "issued_at", after = "7 years" }
action = "delete"
max_fraction = 1.0
batch_size = 20
batch_pause = "300 ms"
EOF
  fi
}
write_config no >"$MERGED/etc/retentiond/retentiond.toml"

# ---------------------------------------------------------------------------------------
step "systemctl enable --now retentiond: active (running) after READY=1"
ct systemctl daemon-reload
timeout 60 nsenter -t "$LEADER" -a systemctl enable --now retentiond 2>/dev/null \
  || fail "systemctl enable --now retentiond failed"
show() { ct systemctl show -p "$1" --value retentiond; }
# The first journal line of retentiond.service matching $1 (via a file: no SIGPIPE games).
jgrep() { ct journalctl -u retentiond --no-pager -o cat >"$RUN/journal.txt"; grep -m 1 -- "$1" "$RUN/journal.txt"; }
# Waits up to $2 seconds for such a line and prints it.
jwait() {
  local i
  for i in $(seq 1 $(($2 * 2))); do jgrep "$1" >/dev/null && break; sleep 0.5; done
  jgrep "$1" | cut -c1-200 | sed 's/^/  /'
}
[ "$(show ActiveState)/$(show SubState)" = active/running ] || fail "not active (running): $(show ActiveState)/$(show SubState)"
[ "$(show Type)" = notify ] || fail "Type is not notify"
jgrep "retentiond started" >/dev/null || fail "no 'retentiond started' in the journal"
ct systemctl status retentiond --no-pager >"$RUN/status" 2>&1 || true
grep -q "Active: active (running)" "$RUN/status" || { cat "$RUN/status"; fail "status does not say active (running)"; }
grep -q "Status: \"" "$RUN/status" || { cat "$RUN/status"; fail "status shows no STATUS= line"; }
grep "Status: " "$RUN/status" | sed 's/^ */  /'

# ---------------------------------------------------------------------------------------
step "a scheduled pass runs; the trail verifies as the service's dynamic user"
jwait "pass done" 20 | grep . || fail "no scheduled pass within 20 s"
left=$(sqlite3 -readonly "$MERGED$DATA/books.db" "SELECT count(*) FROM sessions")
[ "$left" = 20 ] || fail "stale-sessions: expected 20 sessions left, found $left"
# The same dynamic user (User=retentiond with DynamicUser=: systemd shares the UID with the
# running service), the same sandbox for the state directory.
timeout 60 nsenter -t "$LEADER" -a systemd-run --quiet --wait --pipe --collect \
  -p DynamicUser=yes -p User=retentiond -p StateDirectory=retentiond -p PrivateUsers=yes \
  -p ProtectSystem=strict \
  /bin/sh -c 'echo "  verify as uid $(id -u) (state dir owned by $(stat -c %u /var/lib/retentiond/.))"; exec /usr/bin/retentiond audit verify' \
  >"$RUN/verify" 2>&1 || { cat "$RUN/verify"; fail "audit verify as the dynamic user failed"; }
cat "$RUN/verify"
svc_uid=$(ct stat -c %u /var/lib/private/retentiond)
grep -q "as uid $svc_uid " "$RUN/verify" || fail "audit verify did not run as the service's UID $svc_uid"

# ---------------------------------------------------------------------------------------
step "systemctl reload with a broken config: still running, the journal says why"
pid_before=$(show MainPID)
printf '[daemon]\nstate_dir = "/var/lib/retentiond"\nschedule = "not a cron"\n' \
  >"$MERGED/etc/retentiond/retentiond.toml"
timeout 30 nsenter -t "$LEADER" -a systemctl reload retentiond || fail "systemctl reload failed"
jwait "config reload refused" 10 | grep . || fail "the journal does not say why the reload was refused"
[ "$(show ActiveState)/$(show SubState)" = active/running ] || fail "not running after a broken reload"
[ "$(show MainPID)" = "$pid_before" ] || fail "the main process changed on reload"

step "systemctl reload with a good config (a new rule): applied"
write_config yes >"$MERGED/etc/retentiond/retentiond.toml"
timeout 30 nsenter -t "$LEADER" -a systemctl reload retentiond || fail "systemctl reload failed"
jwait "config reloaded" 10 | grep . || fail "no 'config reloaded' in the journal"
[ "$(show MainPID)" = "$pid_before" ] || fail "the main process changed on reload"

# ---------------------------------------------------------------------------------------
step "systemctl stop in the middle of a pass: Result=success, every deletion audited"
count() { sqlite3 -readonly -cmd ".timeout 5000" "$MERGED$DATA/books.db" "SELECT count(*) FROM invoices WHERE id <= 1000"; }
mid=""
for _ in $(seq 1 100); do
  n=$(count 2>/dev/null || echo 1000)
  if [ "$n" -lt 950 ]; then mid=$n; break; fi
  sleep 0.2
done
[ -n "$mid" ] || fail "the old-invoices pass did not start within 20 s"
timeout 90 nsenter -t "$LEADER" -a systemctl stop retentiond || fail "systemctl stop failed"
result=$(show Result); status=$(show ExecMainStatus)
echo "  Result=$result ExecMainStatus=$status"
[ "$result" = success ] || fail "stop did not end with Result=success"
left=$(count)
deleted=$((1000 - left))
echo "  old-invoices: $deleted of 1000 deleted when the stop came"
[ "$deleted" -gt 0 ] && [ "$left" -gt 0 ] || fail "the stop did not come mid-pass (deleted $deleted)"
sqlite3 -readonly "$MERGED$DATA/books.db" "SELECT id FROM invoices WHERE id <= 1000" >"$RUN/left"
ct retentiond audit export --format jsonl >"$RUN/trail.jsonl"
python3 - "$RUN/trail.jsonl" "$RUN/left" <<'PY'
import json, sys
trail = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
left = {int(l) for l in open(sys.argv[2]) if l.strip()}
audited = [int(e["key"]) for e in trail if e["rule"] == "old-invoices" and e["action"] == "delete"]
gone = set(range(1, 1001)) - left
assert len(audited) == len(set(audited)), "a record audited twice"
assert set(audited) == gone, f"audited {len(audited)} != deleted {len(gone)}: not audited {sorted(gone - set(audited))[:5]}, audited but present {sorted(set(audited) - gone)[:5]}"
print(f"  {len(audited)} deletions, {len(audited)} audit entries, same keys")
PY
ct retentiond audit verify | sed 's/^/  /'

# ---------------------------------------------------------------------------------------
step "journalctl -u retentiond -o json: structured fields"
ct journalctl -u retentiond --no-pager -o json >"$RUN/journal.json"
python3 - "$RUN/journal.json" <<'PY'
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ours = [e for e in entries if e.get("_COMM") == "retentiond" or e.get("SYSLOG_IDENTIFIER") == "retentiond"]
assert ours, "no entries from the retentiond process"
for e in ours:
    for f in ("MESSAGE", "PRIORITY", "_SYSTEMD_UNIT", "_PID"):
        assert f in e, f"{f} missing in {e}"
assert all(e["_SYSTEMD_UNIT"] == "retentiond.service" for e in ours)
prios = sorted({e["PRIORITY"] for e in ours})
refused = [e for e in ours if "config reload refused" in str(e["MESSAGE"])]
assert refused, "the refused reload is not in the JSON journal"
print(f"  {len(ours)} entries from retentiond; PRIORITY values {prios}; refused reload at PRIORITY {refused[0]['PRIORITY']}")
extra = sorted({k for e in ours for k in e if k in ("RULE", "RUN_ID", "DATABASE")})
if extra:
    print(f"  native journald fields present: {', '.join(extra)}")
else:
    print("  no RULE=/RUN_ID=/DATABASE= fields: the daemon logs text to stderr (journald stream)")
PY

echo "== systemd test passed in $((SECONDS - START)) s"
