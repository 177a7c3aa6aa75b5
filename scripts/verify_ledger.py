#!/usr/bin/env python3
"""Verifies an exported Strowger run ledger with nothing but Python's standard library.

    strowger audit export RUN -o run.jsonl --definition run.definition.json
    python3 scripts/verify_ledger.py run.jsonl [run.definition.json]

Re-derives every hash of the chain (docs/formats/ledger_event_v1.md) and, given the pinned
definition snapshot, checks its SHA-256 against the one run.created recorded. Prints
"ok ..." and exits 0, or names the first bad sequence number and exits 1.
"""
import hashlib
import json
import sys


def fail(message):
    print("BROKEN:", message)
    sys.exit(1)


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        sys.exit(2)
    prev = "0" * 64
    created = None
    n = 0
    with open(sys.argv[1], encoding="utf-8") as lines:
        for n, line in enumerate(lines, 1):
            line = line.rstrip("\n")
            try:
                event = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"seq {n}: malformed JSON ({e})")
            if json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False) != line:
                fail(f"seq {n}: not in canonical form")
            claimed = event.pop("hash", None)
            if event.get("seq") != n:
                fail(f"seq {n}: gap or reorder (found seq {event.get('seq')})")
            if event.get("prev_hash") != prev:
                fail(f"seq {n}: prev_hash mismatch")
            body = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            actual = hashlib.sha256((event["prev_hash"] + body).encode("utf-8")).hexdigest()
            if actual != claimed:
                fail(f"seq {n}: hash mismatch")
            if event.get("type") == "run.created":
                created = event
            prev = claimed
    if n == 0:
        fail("no events")
    if len(sys.argv) == 3:
        if created is None:
            fail("no run.created event to check the definition against")
        with open(sys.argv[2], "rb") as definition:
            digest = hashlib.sha256(definition.read()).hexdigest()
        if digest != created["data"]["definition_sha256"]:
            fail("the definition file is not the one the run was pinned to")
    print(f"ok {n} events, head {prev}")


if __name__ == "__main__":
    main()
