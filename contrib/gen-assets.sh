#!/bin/sh
# Generates what the .deb ships besides the binary: the man pages (gzipped, as Debian
# wants them) and the bash, zsh and fish completions, from the clap definitions, via the
# hidden `retentiond generate`. Run it after `cargo build --release` and before `cargo deb`:
#
#   cargo build --release && sh contrib/gen-assets.sh && cargo deb --no-build
#
# Usage: contrib/gen-assets.sh [BINARY] (default: target/release/retentiond).
# Writes target/assets/{man/*.1.gz, completions/{retentiond.bash,_retentiond,retentiond.fish}}.
set -eu
cd "$(dirname "$0")/.."
bin=${1:-target/release/retentiond}
out=target/assets
if [ ! -x "$bin" ]; then
    echo "gen-assets: $bin is missing; run cargo build --release first" >&2
    exit 1
fi
rm -rf "$out"
"$bin" generate --out "$out"
# -n: no name or time stamp in the gzip header, so the .deb is reproducible.
gzip -9nf "$out"/man/*.1
echo "gen-assets: wrote $(ls "$out"/man | wc -l) man pages and 3 completions into $out"
