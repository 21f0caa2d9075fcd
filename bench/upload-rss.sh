#!/usr/bin/env bash
# Benchmark: peak memory of `ferry build` storing a large artifact in S3 (the aws backend
# against a local moto server on 127.0.0.1). The target is a peak RSS under 100 MiB for a
# 1 GiB artifact, whatever its size: hashing and upload stream in fixed-size parts. Prints the
# peak RSS of ferry and, as a reference measured in the same run, of `sha256sum` on the same
# file, and their ratio. Usage: bench/upload-rss.sh [SIZE_MIB] (default 1024).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
bash scripts/setup-test-env.sh
cargo build --quiet --release -p ferry-cli
ferry="$PWD/target/release/ferry"
py="$PWD/.venv/bin/python"
work="$(mktemp -d)"
port="$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test FERRY_LOG=warn
unset AWS_SESSION_TOKEN AWS_PROFILE
for _ in $(seq 100); do curl -sf "$AWS_ENDPOINT_URL/moto-api/" >/dev/null && break; sleep 0.1; done

$py - "$work" <<'PY'
import sys, boto3
work = sys.argv[1]
def session(account):
    c = boto3.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="setup")["Credentials"]
    return dict(aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
for account, bucket in (("222222222222", "bench-store"), ("333333333333", "bench-audit")):
    boto3.client("s3", **session(account)).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
PY

mkdir -p "$work/app"
echo "writing a ${size_mib} MiB artifact" >&2
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/app/big.bin"
cat >"$work/pipeline.yaml" <<YAML
version: 1
name: bench
backend: aws
accounts: {tooling: "111111111111", artifacts: "222222222222", security: "333333333333", dev: "444444444444", prod: "555555555555"}
aws:
  region: eu-west-1
  orchestrator: {account: tooling}
  store: {account: artifacts, bucket: bench-store}
signing: {key: bench, public_key: keys/bench.pem}
build: {account: dev, working_dir: app, artifacts: [{name: big, path: big.bin}]}
stages: [{name: prod, account: prod}]
audit: {account: security, bucket: bench-audit}
YAML
export FERRY_HOME="$work/home"
(cd "$work" && "$ferry" keygen --name bench >/dev/null && "$ferry" key export --name bench --out keys >/dev/null)

reference="$(cd "$work" && $py "$OLDPWD/bench/peak_rss.py" sha256sum app/big.bin | tail -n 1)"
start=$(date +%s.%N)
ferry_rss="$(cd "$work" && $py "$OLDPWD/bench/peak_rss.py" "$ferry" build pipeline.yaml --output json | tail -n 1)"
end=$(date +%s.%N)
$py - "$size_mib" "$ferry_rss" "$reference" "$start" "$end" <<'PY'
import sys
size, ferry, ref, start, end = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
secs = end - start
print(f"artifact:                 {size} MiB")
print(f"ferry build peak RSS:     {ferry:.1f} MiB  (target < 100 MiB)")
print(f"sha256sum peak RSS (ref): {ref:.1f} MiB")
print(f"ratio ferry / sha256sum:  {ferry / ref:.1f}x")
print(f"ferry build time:         {secs:.1f} s ({size / secs:.0f} MiB/s, hashing twice + upload to moto)")
sys.exit(0 if ferry < 100 else 1)
PY
