#!/bin/sh
# The hello example's build: writes a tiny static site and its config. The output depends
# only on the inputs, so rebuilding yields the same artifact digests.
set -eu
mkdir -p dist/config
cat > dist/index.html <<'HTML'
<!doctype html>
<title>hello from ferry</title>
<p>Built once, promoted everywhere.</p>
HTML
printf '{"greeting": "hello", "replicas": 2}\n' > dist/config/app.json
printf '{"feature_flags": {"new_banner": false}}\n' > dist/config/flags.json
echo "built $(wc -c < dist/index.html) bytes of site" >&2
