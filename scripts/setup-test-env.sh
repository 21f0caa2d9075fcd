#!/usr/bin/env bash
# Creates the Python venv the test suite uses (.venv/, git-ignored) with the independent
# verifiers ferry's attestations are checked against: securesystemslib and in-toto, plus
# jsonschema and PyYAML to check every pipeline file against `ferry schema`.
# Idempotent: a venv whose marker matches the pinned requirements is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
req=tests/conformance/requirements.txt
marker=.venv/.ferry-requirements
if [ -x .venv/bin/python ] && [ -f "$marker" ] && cmp -s "$req" "$marker"; then
  exit 0
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
cp "$req" "$marker"
echo "test venv ready: $(.venv/bin/python --version)" >&2
