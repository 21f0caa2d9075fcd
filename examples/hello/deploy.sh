#!/bin/sh
# The hello example's deploy action. On the local backend an account is a directory
# (FERRY_ACCOUNT_DIR); "deploying" copies the verified artifacts there.
set -eu
target="$FERRY_ACCOUNT_DIR/$FERRY_STAGE/site"
mkdir -p "$target"
cp "$FERRY_ARTIFACT_SITE" "$target/index.html"
echo "$FERRY_RELEASE" > "$target/RELEASE"
echo "deployed $FERRY_RELEASE to $FERRY_STAGE in account $FERRY_ACCOUNT_ID ($target)" >&2
