#!/usr/bin/env python3
"""Checks recorded responses of `strowger serve` against its OpenAPI 3.1 document.

usage: validate_openapi.py OPENAPI_JSON RESPONSES_JSONL

Each line of RESPONSES_JSONL is {"method", "path", "status", "content_type", "body"} of one
real response. Every response must belong to a documented operation, have a documented status
(or fall under `default` when it is an error), a documented content type, and a body that
validates against the schema (JSON Schema 2020-12, python3-jsonschema). Every operation must
have been seen answering at least one success and one error. Prints what is wrong and exits 1,
or prints a summary and exits 0.
"""
import json
import re
import sys

from jsonschema import Draft202012Validator


def main():
    doc = json.load(open(sys.argv[1]))
    records = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
    Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})
    operations = []
    for path, item in doc["paths"].items():
        regex = re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$")
        for method, op in item.items():
            operations.append((path, regex, method.upper(), op))
    problems = []
    seen_ok, seen_error = set(), set()
    for record in records:
        method, path, status = record["method"], record["path"], record["status"]
        # A literal segment wins over a parameter (as the server's route table orders them).
        candidates = [o for o in operations if o[2] == method and o[1].match(path)]
        candidates.sort(key=lambda o: o[0].count("{"))
        where = f"{method} {path} -> {status}"
        if not candidates:
            # The router's own answers to paths and methods it does not serve: problem details.
            if status in (404, 405):
                schema = {"$ref": "#/components/schemas/Problem", "components": doc["components"]}
                for e in Draft202012Validator(schema).iter_errors(json.loads(record["body"])):
                    problems.append(f"{where}: {e.message[:300]}")
            else:
                problems.append(f"{where}: no documented operation")
            continue
        template, _, _, op = candidates[0]
        key = (template, method)
        (seen_ok if status < 400 else seen_error).add(key)
        responses = op["responses"]
        response = responses.get(str(status))
        if response is None:
            if status < 400 or "default" not in responses:
                problems.append(f"{where}: status {status} is not documented for {template}")
                continue
            response = responses["default"]
        content_type = record["content_type"].split(";")[0].strip()
        content = response.get("content")
        if not content:
            if record["body"]:
                problems.append(f"{where}: a body where the document has none")
            continue
        if content_type not in content:
            problems.append(f"{where}: content type {content_type} not documented "
                            f"({', '.join(content)})")
            continue
        if content_type == "text/event-stream":
            continue
        schema = dict(content[content_type]["schema"])
        schema["components"] = doc["components"]
        if content_type == "application/x-ndjson":
            # JSON Lines: every line an object; the document's schema is of the text.
            for n, line in enumerate(record["body"].splitlines(), 1):
                try:
                    if not isinstance(json.loads(line), dict):
                        problems.append(f"{where}: line {n} is not a JSON object")
                except ValueError as e:
                    problems.append(f"{where}: line {n} is not JSON: {e}")
            instance = record["body"]
        elif content_type.endswith("json"):
            try:
                instance = json.loads(record["body"])
            except ValueError as e:
                problems.append(f"{where}: body is not JSON: {e}")
                continue
        else:
            instance = record["body"]
        errors = sorted(Draft202012Validator(schema).iter_errors(instance), key=lambda e: e.path)
        for e in errors[:3]:
            at = "/".join(str(p) for p in e.absolute_path)
            problems.append(f"{where}: at /{at}: {e.message[:300]}")
    for template, _, method, op in operations:
        key = (template, method)
        if key not in seen_ok:
            problems.append(f"{method} {template}: no success response was checked")
        if key not in seen_error:
            problems.append(f"{method} {template}: no error response was checked")
    if problems:
        print("\n".join(problems))
        return 1
    print(f"{len(records)} responses of {len(operations)} operations validate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
