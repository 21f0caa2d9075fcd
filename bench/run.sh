#!/usr/bin/env bash
# ferry's storage benchmarks in one command: builds ferry and the benchmark in release mode,
# then measures, in one run, a long audit log against an empty one on the local backend
# (promote, approve, audit verify time and peak RSS, audit show --release) and on moto
# (append cost with 10,000 events, requests per append, a 3-stage run's HTTP and AssumeRole
# counts). Prints each ratio and a PASS/FAIL verdict per target. Not part of `.ci/run`.
# Usage: bash bench/run.sh [--events N] [--local-only]   (default 1,000,000 events; needs
# about 5 GiB of disk for them, and the test venv for moto).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
cargo build --quiet --release -p ferry-cli -p ferry-bench
exec target/release/ferry-bench "$PWD/target/release/ferry" "$@"
