"""Validates pipeline files against the JSON Schema printed by `ferry schema`.

Usage: check_schema.py SCHEMA_JSON PIPELINE.yaml... ; prints one line per file, exits 1 on
any violation. With --expect-invalid, every file must be rejected instead.
"""

import json
import sys

import re

import jsonschema
import yaml


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `on`, `off`, `yes` and `no` are booleans; ferry (saphyr)
    and editors (yaml-language-server) read YAML 1.2, where only true and false are. A
    notification's `on:` key is the string "on"."""


Yaml12Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"] for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


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
            doc = yaml.load(f, Loader=Yaml12Loader)  # noqa: S506 (a SafeLoader)
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
