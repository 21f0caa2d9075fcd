#!/usr/bin/env bash
# Creates the Python venv the test suite uses (.venv/, git-ignored) with the independent
# verifiers ferry's attestations are checked against: securesystemslib and in-toto, plus
# jsonschema and PyYAML to check every pipeline file against `ferry schema`; and Chromium
# with playwright-core for the browser tests of `ferry ui`. Idempotent: what is in place
# and matches its pins is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Python venv: a venv whose marker matches the pinned requirements is left alone.
venv() {
  local req=tests/conformance/requirements.txt marker=.venv/.ferry-requirements
  if [ -x .venv/bin/python ] && [ -f "$marker" ] && cmp -s "$req" "$marker"; then
    return 0
  fi
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$marker"
  echo "test venv ready: $(.venv/bin/python --version)" >&2
}

# The browser tests of `ferry ui` (tests/e2e/browser.rs): Debian's chromium, driven by
# playwright-core, and html-validate for its pages, from the lock file in tests/browser (no
# browser download, no build step).
browser() {
  if ! command -v chromium >/dev/null; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
    echo "installed $(chromium --version)" >&2
  fi
  local lock=tests/browser/package-lock.json marker=tests/browser/node_modules/.ferry-lock
  if [ -f "$marker" ] && cmp -s "$lock" "$marker"; then
    return 0
  fi
  npm ci --prefix tests/browser --no-audit --no-fund --silent
  cp "$lock" "$marker"
  local v='require("./tests/browser/node_modules/NAME/package.json").version'
  echo "browser test driver ready: playwright-core $(node -p "${v/NAME/playwright-core}"), html-validate $(node -p "${v/NAME/html-validate}")" >&2
}

venv
browser
