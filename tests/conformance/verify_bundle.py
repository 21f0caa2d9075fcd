"""Verifies a ferry evidence bundle (`ferry audit export --release R DIR`) without ferry: with
securesystemslib for every DSSE signature and the standard library for the rest.

Usage: verify_bundle.py DIR. Prints `ok` and the deployed stages, or raises AssertionError
naming what does not hold:
- every file is the one bundle.json lists (sha256), and nothing is added;
- the provenance envelope verifies with a release key of trust-root.json;
- events.jsonl is an unbroken stretch of the hash chain (each body hashes to its hash, each
  event names its predecessor's hash, positions run without a gap), and the signed checkpoint
  signs the hash of the event at its position;
- every `approved` event of the release is backed by an approval envelope that verifies with
  the pinned key of the approver it names, for this release's manifest, stage and request;
- every stage the trust root guards that the release succeeded in passed its approval gate
  with at least `required` distinct pinned keys whose approvals (recorded in the log before the
  gate, unexpired at the gate, not the builder's or requester's, of an allowed approver) verify;
- every success carries a deployment attestation that verifies with a release key and names
  the release and the stage.
"""

import base64
import copy
import hashlib
import json
import os
import sys

from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

APPROVAL = "https://ferry.invalid/approval/v1"
DEPLOYMENT = "https://ferry.invalid/deployment/v1"
STATEMENT = "https://in-toto.io/Statement/v1"

root_dir = sys.argv[1]


def read(rel: str) -> bytes:
    with open(os.path.join(root_dir, rel), "rb") as f:
        return f.read()


def key(path: str) -> SSlibKey:
    d = json.loads(read(path))
    keyid = d.pop("keyid")
    return SSlibKey.from_dict(keyid, copy.deepcopy(d))


def payload(data: bytes) -> dict:
    return json.loads(base64.b64decode(json.loads(data)["payload"]))


bundle = json.loads(read("bundle.json"))
listed = bundle["files"]
present = set()
for dirpath, _, names in os.walk(root_dir):
    for n in names:
        present.add(os.path.relpath(os.path.join(dirpath, n), root_dir).replace(os.sep, "/"))
for rel, digest in listed.items():
    assert rel in present, f"{rel} is listed but missing"
    assert hashlib.sha256(read(rel)).hexdigest() == digest, f"{rel} does not match bundle.json"
extra = present - set(listed) - {"bundle.json"}
assert not extra, f"files not listed in bundle.json: {sorted(extra)}"

release, pipeline = bundle["release"], bundle["pipeline"]
manifest_bytes = read("manifest.json")
manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
assert manifest_sha == bundle["manifest_sha256"], "manifest.json is not the bundle's manifest"
manifest = json.loads(manifest_bytes)
root = json.loads(read("trust-root.json"))
assert root["pipeline"] == pipeline

release_keys = []
for i, k in enumerate(root["release_keys"], start=1):
    rk = key(f"keys/release-{i}.json")
    assert rk.keyid == k["keyid"], f"keys/release-{i}.json is not the root's release key"
    release_keys.append(rk)
approvers = {}
for a in root["approvers"]:
    ak = key(f"keys/approver-{a['name']}.json")
    assert ak.keyid == a["key"]["keyid"], f"keys/approver-{a['name']}.json is not the root's key for {a['name']}"
    approvers[a["name"]] = (ak, a["identities"])

# The release: its provenance is signed with a release key.
provenance = Envelope.from_dict(json.loads(read("provenance.dsse.json")))
provenance.verify(release_keys, 1)

# The stretch of the chain and its checkpoint.
events, hashes = [], {}
prev = None
pos = bundle["first_event"]
for raw in read("events.jsonl").splitlines():
    text = raw.decode("utf-8")
    body = text[len('{"body":'):text.rindex(',"hash":"')]
    parsed = json.loads(text)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    assert digest == parsed["hash"], f"event {pos}: its body does not hash to its hash"
    e = parsed["body"]
    assert e["seq"] == pos, f"position {pos} holds event {e['seq']}"
    assert prev is None or e["prev_hash"] == prev, f"event {pos} does not follow event {pos - 1}"
    prev, hashes[pos] = digest, digest
    events.append(e)
    pos += 1
assert pos - 1 == bundle["last_event"], f"events.jsonl ends at {pos - 1}, not {bundle['last_event']}"
if bundle["checkpoint"] is not None:
    env = Envelope.from_dict(json.loads(read("checkpoint.dsse.json")))
    env.verify(release_keys, 1)
    cp = json.loads(base64.b64decode(json.loads(read("checkpoint.dsse.json"))["payload"]))
    assert hashes.get(cp["seq"]) == cp["head"], f"the checkpoint at {cp['seq']} does not sign the event there"

mine = [e for e in events if e.get("release") == release and e.get("pipeline") == pipeline]


def is_person(name: str, actor: str) -> bool:
    """Whether `actor` is approver `name` (their name, an identity, or a session of a role identity)."""
    if actor == name:
        return True
    for ident in approvers.get(name, (None, []))[1]:
        if ident == actor:
            return True
        if ":role/" in ident and ":assumed-role/" in actor:
            account = ident.split(":")[4]
            role = ident.rsplit("/", 1)[1]
            parts = actor.split(":")
            session = parts[5].split("/") if len(parts) > 5 else []
            if parts[4] == account and len(session) == 3 and session[1] == role and session[2]:
                return True
    return False


def decision(stage: str, data: bytes):
    """(approver, keyid, predicate) of a valid signed decision on this release and stage, or None."""
    try:
        env = json.loads(data)
        [sig] = env["signatures"]
    except (ValueError, KeyError, TypeError):
        return None
    named = [n for n, (k, _) in approvers.items() if k.keyid == sig["keyid"]]
    if not named:
        return None
    try:
        Envelope.from_dict(copy.deepcopy(env)).verify([approvers[named[0]][0]], 1)
    except Exception:  # noqa: BLE001 - any failure means it does not count
        return None
    st = payload(data)
    if st["_type"] != STATEMENT or st["predicateType"] != APPROVAL:
        return None
    subject = st["subject"][0]
    if subject["name"] != f"ferry-release:{release}" or subject["digest"]["sha256"] != manifest_sha:
        return None
    p = st["predicate"]
    if p["pipeline"] != pipeline or p["stage"] != stage or p["approver"] not in named:
        return None
    return p["approver"], sig["keyid"], p


records = {}
for rel in listed:
    if rel.startswith("approvals/"):
        _, stage, _name = rel.split("/", 2)
        d = decision(stage, read(rel))
        if d:
            records.setdefault(stage, []).append(d)

guarded = {s["stage"]: s for s in root["stages"]}
backed = {}  # stage -> [(approver, request, position)]
gates = {}  # stage -> (count of valid keys, position)
deployed = []
for e in mine:
    stage, kind, details = e.get("stage"), e["kind"], e["details"]
    if kind in ("approved", "rejected"):
        verdict = "approve" if kind == "approved" else "reject"
        ok = any(a == details.get("approver") and p["verdict"] == verdict and p["request"] == details.get("request")
                 for a, _, p in records.get(stage, []))
        assert ok, f"event {e['seq']}: `{kind}` by {details.get('approver')} is backed by no valid signed decision"
        backed.setdefault(stage, []).append((details["approver"], details["request"], e["seq"]))
    if kind == "gate_passed" and details.get("gate") == "approval" and stage in guarded and "waived" not in details:
        policy = guarded[stage]
        request = details["request"]
        requester = json.loads(read(f"requests/{stage}/{request}.json"))["requested_by"]
        assert hashlib.sha256(read(f"requests/{stage}/{request}.json")).hexdigest() == request, "request file does not hash to its digest"
        excluded = set()
        if not policy["allow_self_approval"]:
            excluded = {n for n in approvers if is_person(n, manifest["builder"]["actor"]) or is_person(n, requester)}
        keys = set()
        for a, keyid, p in records.get(stage, []):
            if p["verdict"] != "approve" or p["request"] != request or p["not_after"] <= e["at"]:
                continue
            if a in excluded or (policy["approvers"] and a not in policy["approvers"]):
                continue
            if not any(b == a and r == request and seq < e["seq"] for b, r, seq in backed.get(stage, [])):
                continue
            keys.add(keyid)
        assert len(keys) >= policy["required"], f"event {e['seq']}: the gate of {stage} passed with {len(keys)} valid approvals, {policy['required']} required"
        gates[stage] = (len(keys), e["seq"])
    if kind == "promotion_succeeded":
        if stage in guarded:
            assert stage in gates, f"event {e['seq']}: {stage} succeeded without its approval gate"
        att = f"attestations/{stage}-{e['seq']}.dsse.json"
        assert att in listed, f"event {e['seq']}: no deployment attestation in the bundle"
        Envelope.from_dict(json.loads(read(att))).verify(release_keys, 1)
        st = payload(read(att))
        assert st["predicateType"] == DEPLOYMENT and st["predicate"]["stage"] == stage
        assert st["subject"][0]["digest"]["sha256"] == manifest_sha
        deployed.append(stage)

print("ok", " ".join(f"{s}({gates[s][0]})" if s in gates else s for s in deployed))
