#!/usr/bin/env bash
# The web view's benchmark: `ferry ui`'s pipeline page for 1,000 releases x 5 stages, its
# server time against 200 ms and as a ratio to serializing the same status as JSON (measured
# in the same run). Prints PASS/FAIL. Not part of `.ci/run` (it needs a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p ferry-bench-ui
exec target/release/ferry-bench-ui
