#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (the Python venv
# with securesystemslib, in-toto, jsonschema, moto, cfn-lint and zizmor; chromium and
# playwright-core for the browser tests of `ferry ui`), then formatting, lints,
# the dependency rule of ferry-core, and every unit and end-to-end test (the AWS ones
# against moto servers the tests start on 127.0.0.1). `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "rust toolchain components"
if command -v rustup >/dev/null; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step "test environment (.venv, chromium, playwright-core)"
bash scripts/setup-test-env.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "ferry-core depends on no AWS SDK, async runtime, CLI parser or HTTP client"
tree="$(cargo tree -p ferry-core --locked --prefix none --format '{p}')"
grep -q '^ferry-core ' <<<"$tree" || { echo "cargo tree printed nothing for ferry-core" >&2; exit 1; }
if forbidden="$(grep -E '^(aws-|tokio|clap|reqwest)' <<<"$tree")"; then
  echo "ferry-core must not depend on these:" >&2
  echo "$forbidden" | sort -u >&2
  exit 1
fi

step "ferry-cli without the aws feature: no AWS SDK, and it compiles lint-clean"
tree="$(cargo tree -p ferry-cli --no-default-features --locked -e normal --prefix none --format '{p}')"
if sdk="$(grep -E '^(ferry-aws|aws-config|aws-sdk-|aws-smithy-)' <<<"$tree")"; then
  echo "a local-only ferry-cli must not depend on these:" >&2
  echo "$sdk" | sort -u >&2
  exit 1
fi
# The whole workspace, so dependencies keep the features the step above built them with and
# only ferry-cli is checked again (its tests reach ferry-aws as a dev-dependency).
cargo clippy --workspace --all-targets --no-default-features --locked -- -D warnings

step "time through the clock port; no import circles (scripts/check-structure.py)"
python3 scripts/check-structure.py

step "cfn-lint bootstrap/*.yaml"
.venv/bin/cfn-lint bootstrap/*.yaml

step "zizmor --offline action.yml .github/workflows/"
.venv/bin/zizmor --offline --no-progress action.yml .github/workflows/

step "cargo test"
cargo test --workspace --locked
