"""Verifies a ferry audit log directory without ferry: every event line's hash is the sha256
of its body bytes (and of the body re-canonicalised with the standard library), positions run
1..N without a gap, each event names its predecessor's hash, and each sealed segment holds
exactly the events stored an append at a time (`events/SEGMENT/SEQ.json` holds the events
of one append, one line each, from position SEQ on).

Usage: verify_audit_log.py AUDIT_DIR; prints the event count; exits 1 on the first problem.
"""

import hashlib
import json
import os
import sys

root = sys.argv[1]
layout = json.load(open(os.path.join(root, "log.json")))
k = layout["segment_size"]


def check(line: bytes, pos: int, prev: str) -> str:
    text = line.decode("utf-8").rstrip("\n")
    assert text.startswith('{"body":') and text.endswith('"}'), f"event {pos}: not a ferry audit line"
    # {"body":BODY,"hash":"HEX","nonce":"N"}: the hash covers BODY exactly as stored.
    body = text[len('{"body":'):text.rindex(',"hash":"')]
    parsed = json.loads(text)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    assert digest == parsed["hash"], f"event {pos}: the body does not hash to the event's hash"
    canonical = json.dumps(parsed["body"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == digest, f"event {pos}: the body is not canonical JSON"
    assert parsed["body"]["seq"] == pos, f"position {pos} holds event {parsed['body']['seq']}"
    assert parsed["body"]["prev_hash"] == prev, f"event {pos} does not follow event {pos - 1}"
    return digest


prev = "0" * 64
pos = 1
events_dir = os.path.join(root, "events")
for seg in sorted(os.listdir(events_dir)):
    names = sorted(n for n in os.listdir(os.path.join(events_dir, seg)) if not n.startswith("."))
    sealed = os.path.join(root, "segments", f"{seg}.jsonl")
    appends = [(int(n.split(".")[0]), open(os.path.join(events_dir, seg, n), "rb").read().splitlines(keepends=True)) for n in names]
    lines = [line for _, object_lines in appends for line in object_lines]
    if os.path.exists(sealed):
        copy = open(sealed, "rb").read().splitlines(keepends=True)
        assert copy == lines, f"segment {seg} differs from its events"
        assert len(copy) == k, f"segment {seg} holds {len(copy)} events, not {k}"
    for first, object_lines in appends:
        assert first == pos, f"event {pos} is missing"
        for line in object_lines:
            prev = check(line, pos, prev)
            pos += 1
print(pos - 1)
