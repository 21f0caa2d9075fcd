"""Sets up a least-privilege world in a fresh moto server, then turns IAM enforcement on.

Usage: moto_iam_setup.py ENDPOINT STORE_BUCKET AUDIT_BUCKET [--deny-releases] [--gatekeeper]
Prints JSON: the CI user's access keys, the KMS key ARN and its public key (base64 DER). Roles (trust: anyone; moto does
not enforce cross-account trust) and their identity policies, which moto does enforce:
- 111111111111 ferry-orchestrator: may assume the store, audit and signer roles, and the
  dev and staging deploy roles; NOT the prod deploy role.
- 222222222222 ferry-artifacts: S3 on the store bucket (with --deny-releases: only reads
  under releases/).
- 333333333333 ferry-audit: S3 on the audit bucket; ferry-signer: sign with KMS (moto matches
  KMS permissions by action only: on AWS its policy names the signing key, whose key policy
  also says so).
- 444444444444 / 555555555555 / 666666666666 ferry-deploy: sts:GetCallerIdentity.
- 333333333333 ferry-trust-admin: writes trust roots (`trust/`), which the audit role may not;
  the `admin` user (an administrator) may assume it, CI may not.
- 111111111111 release-approvers: the approvers' role (sessions alice, …): may assume the
  orchestrator (to read what they approve) and sign with KMS; alice's own approver key
  (ECC_NIST_P256) is in this account (bootstrap/approver-key.yaml: only her principal signs).
  No role the orchestrator reaches has `kms:Sign` in this account.
- with --gatekeeper, bootstrap/gatekeeper.yaml's world: 333333333333 ferry-gatekeeper (the
  function's execution role; its session's keys are printed as `gatekeeper_session`) may assume
  prod's deploy role and 222222222222 ferry-gatekeeper-reader (which reads the store), read the
  trust roots and append under `gatekeeper/`, which
  the audit role may not; the orchestrator is explicitly denied prod's deploy role and may invoke
  the function.
"""

import base64
import json
import sys
import urllib.request

import boto3

ENDPOINT, STORE, AUDIT = sys.argv[1:4]
DENY_RELEASES = "--deny-releases" in sys.argv
GATEKEEPER = "--gatekeeper" in sys.argv
BASE = dict(endpoint_url=ENDPOINT, region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}]})


def session(account):
    c = boto3.client("sts", **BASE).assume_role(RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="setup")["Credentials"]
    return dict(endpoint_url=ENDPOINT, region_name="eu-west-1", aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])


def role(account, name, statements):
    iam = boto3.client("iam", **session(account))
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName=name, PolicyName="ferry", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))


def allow(actions, resources):
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


iam = boto3.client("iam", **BASE)
iam.create_user(UserName="ci")
# CI may assume the orchestrator and nothing else; alice (a person) only the approvers' role.
iam.put_user_policy(UserName="ci", PolicyName="ferry", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
    allow(["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], "arn:aws:iam::111111111111:role/ferry-orchestrator"),
    allow(["sts:GetCallerIdentity"], "*"),
]}))
key = iam.create_access_key(UserName="ci")["AccessKey"]
iam.create_user(UserName="alice")
iam.put_user_policy(UserName="alice", PolicyName="ferry", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
    allow(["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], "arn:aws:iam::111111111111:role/release-approvers"),
]}))
alice_user = iam.create_access_key(UserName="alice")["AccessKey"]
iam.create_user(UserName="admin")
iam.put_user_policy(UserName="admin", PolicyName="ferry", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
    allow(["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], "arn:aws:iam::333333333333:role/ferry-trust-admin"),
    allow(["sts:GetCallerIdentity"], "*"),
]}))
admin_user = iam.create_access_key(UserName="admin")["AccessKey"]

role("111111111111", "ferry-orchestrator", [
    allow(["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], [
        "arn:aws:iam::222222222222:role/ferry-artifacts",
        "arn:aws:iam::333333333333:role/ferry-audit",
        "arn:aws:iam::333333333333:role/ferry-signer",
        "arn:aws:iam::444444444444:role/ferry-deploy",
        "arn:aws:iam::555555555555:role/ferry-deploy",
    ]),
    allow(["sts:GetCallerIdentity"], "*"),
] + ([
    {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::666666666666:role/ferry-deploy"},
    allow(["lambda:InvokeFunction"], "arn:aws:lambda:eu-west-1:333333333333:function:ferry-gatekeeper"),
] if GATEKEEPER else []))
role("222222222222", "ferry-artifacts", [
    allow(["s3:*"], [f"arn:aws:s3:::{STORE}", f"arn:aws:s3:::{STORE}/shop/artifacts/*", f"arn:aws:s3:::{STORE}/shop/state/*", f"arn:aws:s3:::{STORE}/shop/locks/*", f"arn:aws:s3:::{STORE}/shop/approvals/*", f"arn:aws:s3:::{STORE}/shop/requests/*", f"arn:aws:s3:::{STORE}/shop/pipelines/*"]),
    allow(["s3:GetObject"] if DENY_RELEASES else ["s3:*"], f"arn:aws:s3:::{STORE}/shop/releases/*"),
])
role("333333333333", "ferry-audit", [
    allow(["s3:*"], [f"arn:aws:s3:::{AUDIT}", f"arn:aws:s3:::{AUDIT}/*"]),
    {"Effect": "Deny", "Action": "s3:PutObject", "Resource": [f"arn:aws:s3:::{AUDIT}/trust/*", f"arn:aws:s3:::{AUDIT}/*/trust/*"]},
    {"Effect": "Deny", "Action": "s3:PutObject", "Resource": [f"arn:aws:s3:::{AUDIT}/gatekeeper/*", f"arn:aws:s3:::{AUDIT}/*/gatekeeper/*"]},
])
if GATEKEEPER:
    role("333333333333", "ferry-gatekeeper", [
        allow(["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], "arn:aws:iam::666666666666:role/ferry-deploy"),
        allow(["sts:AssumeRole"], "arn:aws:iam::222222222222:role/ferry-gatekeeper-reader"),
        allow(["s3:GetObject", "s3:ListBucket"], [f"arn:aws:s3:::{AUDIT}", f"arn:aws:s3:::{AUDIT}/*"]),
        allow(["s3:PutObject"], [f"arn:aws:s3:::{AUDIT}/gatekeeper/*", f"arn:aws:s3:::{AUDIT}/*/gatekeeper/*"]),
        allow(["sts:GetCallerIdentity"], "*"),
    ])
    # bootstrap/artifacts.yaml's reader: the store's objects are read in their own account.
    role("222222222222", "ferry-gatekeeper-reader", [allow(["s3:GetObject", "s3:ListBucket"], [f"arn:aws:s3:::{STORE}", f"arn:aws:s3:::{STORE}/*"])])
# bootstrap/security.yaml's trust-admin role: only it writes trust roots; an administrator
# (the `admin` user) assumes it, nothing the orchestrator reaches can.
role("333333333333", "ferry-trust-admin", [
    allow(["s3:ListBucket"], f"arn:aws:s3:::{AUDIT}"),
    allow(["s3:GetObject", "s3:PutObject"], [f"arn:aws:s3:::{AUDIT}/trust/*", f"arn:aws:s3:::{AUDIT}/*/trust/*"]),
])
role("333333333333", "ferry-signer", [allow(["kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"], "*")])
role("111111111111", "release-approvers", [
    allow(["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], "arn:aws:iam::111111111111:role/ferry-orchestrator"),
    allow(["kms:Sign", "kms:GetPublicKey", "kms:DescribeKey"], "*"),
    allow(["sts:GetCallerIdentity"], "*"),
])
role("444444444444", "ferry-deploy", [allow(["sts:GetCallerIdentity"], "*")])
role("555555555555", "ferry-deploy", [allow(["sts:GetCallerIdentity"], "*")])
role("666666666666", "ferry-deploy", [allow(["sts:GetCallerIdentity"], "*")])

for account, bucket in (("222222222222", STORE), ("333333333333", AUDIT)):
    boto3.client("s3", **session(account)).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
kms_key = boto3.client("kms", **session("333333333333")).create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
pem = boto3.client("kms", **session("333333333333")).get_public_key(KeyId=kms_key)["PublicKey"]
approver_kms = boto3.client("kms", **session("111111111111"))
alice_key = approver_kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Description="approver alice")["KeyMetadata"]["Arn"]
alice_der = approver_kms.get_public_key(KeyId=alice_key)["PublicKey"]
alice_session = boto3.client("sts", endpoint_url=ENDPOINT, region_name="eu-west-1", aws_access_key_id=alice_user["AccessKeyId"], aws_secret_access_key=alice_user["SecretAccessKey"]).assume_role(
    RoleArn="arn:aws:iam::111111111111:role/release-approvers", RoleSessionName="alice")["Credentials"]

gatekeeper = {}
if GATEKEEPER:
    g = boto3.client("sts", **session("333333333333")).assume_role(RoleArn="arn:aws:iam::333333333333:role/ferry-gatekeeper", RoleSessionName="ferry-gatekeeper")["Credentials"]
    gatekeeper = {"access_key_id": g["AccessKeyId"], "secret_access_key": g["SecretAccessKey"], "session_token": g["SessionToken"]}

req = urllib.request.Request(ENDPOINT + "/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}, method="POST")
urllib.request.urlopen(req).read()
print(json.dumps({"audit_bucket": AUDIT, "access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"], "kms_key": kms_key, "public_key_der": base64.b64encode(pem).decode(), "alice_kms_key": alice_key, "alice_public_key_der": base64.b64encode(alice_der).decode(),
                  "gatekeeper_session": gatekeeper,
                  "admin": {"access_key_id": admin_user["AccessKeyId"], "secret_access_key": admin_user["SecretAccessKey"]},
                  "alice_session": {"access_key_id": alice_session["AccessKeyId"], "secret_access_key": alice_session["SecretAccessKey"], "session_token": alice_session["SessionToken"]}}))
