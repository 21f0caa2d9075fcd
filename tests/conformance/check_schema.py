"""Validates pipeline files against the JSON Schema printed by `ferry schema`.

Usage: check_schema.py SCHEMA_JSON PIPELINE.yaml... ; prints one line per file, exits 1 on
any violation. With --expect-invalid, every file must be rejected instead.
"""

import json
import sys

import jsonschema
import yaml


def main() -> None:
    args = sys.argv[1:]
    expect_invalid = "--expect-invalid" in args
    args = [a for a in args if a != "--expect-invalid"]
    schema_path, *files = args
    with open(schema_path, encoding="utf8") as f:
        schema = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    failed = False
    for path in files:
        with open(path, encoding="utf8") as f:
            doc = yaml.safe_load(f)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        if bool(errors) != expect_invalid:
            failed = True
        for e in errors:
            print(f"{path}: {'/'.join(map(str, e.path))}: {e.message}")
        if not errors:
            print(f"{path}: valid")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
