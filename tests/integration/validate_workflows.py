#!/usr/bin/python3
"""Validates workflow files against the workflow JSON Schema (docs/schema/workflow.schema.json).

usage: validate_workflows.py SCHEMA_JSON FILE...

Each FILE is YAML or JSON (read with PyYAML, which applies YAML merge keys like the loader).
Prints one line per file ("ok FILE" or "invalid FILE: reason") and exits 1 if any file is
invalid. Uses Debian's python3-jsonschema (Draft 2020-12); run it with /usr/bin/python3.
"""
import json
import sys

import yaml
from jsonschema import Draft202012Validator


def main():
    schema = json.load(open(sys.argv[1]))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    bad = 0
    for path in sys.argv[2:]:
        try:
            document = yaml.safe_load(open(path, encoding="utf-8"))
        except Exception as error:  # a file the loader would refuse too
            print(f"invalid {path}: not YAML: {error}".replace("\n", " "))
            bad += 1
            continue
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.path)
            print(f"invalid {path}: at /{where}: {first.message}"[:400])
            bad += 1
        else:
            print(f"ok {path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
