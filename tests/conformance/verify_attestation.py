"""Verifies a ferry DSSE envelope with independent implementations.

Usage: verify_attestation.py ENVELOPE KEY_JSON [predicateType=URI] [NAME=SHA256 ...]

- the key id is the one securesystemslib computes for the key;
- securesystemslib: `Envelope.verify` with the key from KEY_JSON (`ferry key export`);
- in-toto: `Metadata.load(...).verify_signature(key_dict)`;
- the payload is an in-toto Statement v1 with a SLSA Provenance v1 predicate (or the
  `predicateType=` given: a ferry approval or deployment attestation) whose subjects are
  exactly the NAME=SHA256 pairs given;
- a copy with one payload byte changed must fail both verifiers (the check can fail).
Prints `ok` and exits 0, or raises.
"""

import base64
import copy
import json
import sys

from in_toto.models.metadata import Metadata
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
from securesystemslib.signer._utils import compute_default_keyid


def main() -> None:
    envelope_path, key_path, *rest = sys.argv[1:]
    predicate_type = next((a.split("=", 1)[1] for a in rest if a.startswith("predicateType=")), "https://slsa.dev/provenance/v1")
    subjects = [a for a in rest if not a.startswith("predicateType=")]
    with open(key_path, encoding="utf8") as f:
        key_dict = json.load(f)
    with open(envelope_path, encoding="utf8") as f:
        data = json.load(f)

    keyid = key_dict["keyid"]
    sslib_dict = {k: v for k, v in key_dict.items() if k != "keyid"}
    key = SSlibKey.from_dict(keyid, copy.deepcopy(sslib_dict))
    expected_keyid = compute_default_keyid(key.keytype, key.scheme, key.keyval)
    assert keyid == expected_keyid, f"keyid {keyid} != securesystemslib's {expected_keyid}"

    envelope = Envelope.from_dict(copy.deepcopy(data))
    verified = envelope.verify([key], 1)
    assert keyid in verified, f"securesystemslib did not accept key {keyid}"

    metadata = Metadata.load(envelope_path)
    metadata.verify_signature(copy.deepcopy(key_dict))

    statement = json.loads(base64.b64decode(data["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1", statement["_type"]
    assert statement["predicateType"] == predicate_type, statement["predicateType"]
    predicate = statement["predicate"]
    if predicate_type == "https://slsa.dev/provenance/v1":
        assert predicate["buildDefinition"]["buildType"]
        assert predicate["runDetails"]["builder"]["id"]
        for field in ("startedOn", "finishedOn"):
            assert predicate["runDetails"]["metadata"][field].endswith("Z"), field
    got = sorted(f'{s["name"]}={s["digest"]["sha256"]}' for s in statement["subject"])
    if subjects:
        assert got == sorted(subjects), f"subjects {got} != {sorted(subjects)}"

    tampered = copy.deepcopy(data)
    body = bytearray(base64.b64decode(tampered["payload"]))
    body[-2] ^= 0x01
    tampered["payload"] = base64.b64encode(bytes(body)).decode()
    try:
        Envelope.from_dict(tampered).verify([key], 1)
    except Exception:  # noqa: BLE001 - any verification error is the expected outcome
        pass
    else:
        raise AssertionError("securesystemslib accepted a tampered payload")

    print("ok")


if __name__ == "__main__":
    main()
