#!/usr/bin/env bash
# What installing ferry from source costs, measured cold: the release binary (`--profile dist`:
# fat LTO, one codegen unit, stripped) with the AWS backend (the default) and without it
# (`--no-default-features`: the local backend only, no AWS SDK), each built in a target
# directory of its own from nothing. Prints build time and binary size of each and their ratios,
# then checks the local-only binary runs a local pipeline and refuses an aws one with the error
# that says how to get AWS support. Not part of `.ci/run` (two cold release builds take a while).
# Usage: bash bench/build.sh [--jobs N]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=()
if [ "${1:-}" = "--jobs" ]; then jobs=(--jobs "$2"); fi
out="$PWD/target/bench-build"
rm -rf "$out"
mkdir -p "$out"

measure() { # name, cargo flags...
  local name="$1"; shift
  local start end
  start=$(date +%s)
  cargo build --quiet --locked --profile dist -p ferry-cli --target-dir "$out/$name" "${jobs[@]}" "$@"
  end=$(date +%s)
  echo "$name $((end - start)) $(stat -c %s "$out/$name/dist/ferry")" >>"$out/results"
}

measure full
measure local-only --no-default-features

printf '%-12s %10s %12s\n' variant "build (s)" "size (MiB)"
while read -r name secs bytes; do
  printf '%-12s %10s %12s\n' "$name" "$secs" "$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}')"
done <"$out/results"
read -r _ full_s full_b < <(grep '^full ' "$out/results")
read -r _ local_s local_b < <(grep '^local-only ' "$out/results")
awk -v a="$local_s" -v b="$full_s" -v c="$local_b" -v d="$full_b" \
  'BEGIN {printf "local-only / full: build time %.2f, binary size %.2f\n", a / b, c / d}'

# The local-only binary does the local backend's whole job and says what it cannot do.
ferry="$out/local-only/dist/ferry"
"$ferry" --version
"$ferry" validate pipelines/shop-aws.yaml >/dev/null
if msg="$("$ferry" doctor pipelines/shop-aws.yaml 2>&1)"; then
  echo "FAIL: the local-only ferry ran doctor on an aws pipeline" >&2
  exit 1
fi
grep -q "built without it (no \`aws\` feature)" <<<"$msg" || { echo "FAIL: unexpected error: $msg" >&2; exit 1; }
echo "local-only on an aws pipeline: $(head -n 1 <<<"$msg")"
# try-local in a copy of its files (it writes the demo's keys next to the pipeline).
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/scripts" "$work/pipelines/keys" "$work/examples"
cp scripts/try-local.sh "$work/scripts/"
cp pipelines/hello.yaml "$work/pipelines/"
cp -r examples/hello "$work/examples/"
code=0
FERRY_HOME="$work/home" FERRY_BIN="$ferry" bash "$work/scripts/try-local.sh" >"$out/try-local.log" 2>&1 || code=$?
grep -q "waiting for approval" "$out/try-local.log" || { echo "FAIL: try-local with the local-only ferry (exit $code):" >&2; cat "$out/try-local.log" >&2; exit 1; }
echo "local-only ferry: try-local ran pipelines/hello.yaml up to prod's approval"
