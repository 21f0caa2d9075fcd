#!/usr/bin/env bash
# Try ferry with no AWS account: builds ferry, creates the demo signing key and the keys of
# its three approvers (alice, bob, carol), and runs
# pipelines/hello.yaml on the embedded local backend. It stops at prod's approval gate and
# prints the command that approves it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "error: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }
if [ -n "${FERRY_BIN:-}" ]; then
  ferry="$FERRY_BIN"   # a prebuilt binary (the test suite uses this)
else
  cargo build --quiet -p ferry-cli
  ferry="$PWD/target/debug/ferry"
fi
export FERRY_HOME="${FERRY_HOME:-$PWD/.ferry}"
if [ ! -f "$FERRY_HOME/keys/hello.key" ]; then
  "$ferry" keygen --name hello
  rm -f pipelines/keys/hello.pem pipelines/keys/hello.json
fi
[ -f pipelines/keys/hello.pem ] || "$ferry" key export --name hello --out pipelines/keys
# The three approvers' own keys (on one machine for the demo); approvals they sign count.
for who in alice bob carol; do
  [ -f "$FERRY_HOME/keys/$who.key" ] || { "$ferry" keygen --name "$who" >/dev/null; rm -f "pipelines/keys/$who.pem"; }
  [ -f "pipelines/keys/$who.pem" ] || "$ferry" key export --name "$who" --out pipelines/keys >/dev/null
done
# What an administrator does once (and again when approvers or thresholds change): publish the
# pipeline's trust root, which its protected prod stage trusts instead of the pipeline file.
FERRY_ACTOR=admin "$ferry" trust publish pipelines/hello.yaml >/dev/null
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
code=0
"$ferry" run pipelines/hello.yaml | tee "$out" || code=$?
if [ "$code" -eq 3 ]; then
  id="$(grep -o 'r[0-9a-f]\{16\}' "$out" | head -n 1)"
  echo
  echo "ferry exited 3: release $id is waiting for approval (that is the point of the demo)."
  # The binary as it was run here: the repository's build, or the prebuilt one in FERRY_BIN.
  shown="$ferry"
  if [ "$ferry" = "$PWD/target/debug/ferry" ]; then shown="target/debug/ferry"; fi
  echo "Approve it as two people, then carry it on to prod:"
  echo "  FERRY_ACTOR=alice $shown approve pipelines/hello.yaml --release $id --stage prod --yes"
  echo "  FERRY_ACTOR=bob   $shown approve pipelines/hello.yaml --release $id --stage prod --yes"
  echo "  $shown run pipelines/hello.yaml --release $id"
  exit 0
fi
exit "$code"
