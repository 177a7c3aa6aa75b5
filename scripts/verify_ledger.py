#!/usr/bin/env python3
"""Verifies an exported Strowger run ledger with Python's standard library (and, for the
signatures, the `openssl` command).

    strowger audit export RUN -o run.jsonl --definition run.definition.json
    strowger audit pubkey > ledger.pub
    python3 scripts/verify_ledger.py run.jsonl [run.definition.json] [--pubkey ledger.pub]

Re-derives every hash of the chain (docs/formats/ledger_event_v1.md); given the pinned
definition snapshot, checks its SHA-256 against the one run.created recorded; for each signed
checkpoint (docs/formats/checkpoint_v1.md), checks that it names the chain's hash at its seq
and that its Merkle path leads to its batch's root, and with --pubkey that the batch's Ed25519
signature verifies; and checks that a run that ended (run.completed, run.failed,
run.cancelled) has its last event covered by a checkpoint. Prints "ok ..." and exits 0, or
names the first problem and exits 1.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

TERMINAL = {"run.completed", "run.failed", "run.cancelled"}


def fail(message):
    print("BROKEN:", message)
    sys.exit(1)


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def leaf_hash(run_id, seq, head):
    text = "\0strowger checkpoint v1\n" + run_id + "\n" + str(seq) + "\n" + head
    return hashlib.sha256(text.encode("utf-8")).digest()


def root_from_path(leaf, path):
    node = leaf
    for side, sibling_hex in path:
        sibling = bytes.fromhex(sibling_hex)
        pair = sibling + node if side == "L" else node + sibling
        node = hashlib.sha256(b"\x01" + pair).digest()
    return node.hex()


def batch_message(batch):
    return (
        "strowger checkpoint batch v1\n"
        f"batch {batch['batch_seq']}\n"
        f"prev {batch['prev_hash']}\n"
        f"root {batch['root']}\n"
        f"leaves {batch['leaves']}\n"
        f"key {batch['key_id']}\n"
        f"time {batch['signed_at']}\n"
        f"recovered {1 if batch['recovered'] else 0}\n"
    )


def signature_verifies(pubkey, message, signature_hex):
    with tempfile.TemporaryDirectory() as tmp:
        msg = os.path.join(tmp, "message")
        sig = os.path.join(tmp, "signature")
        with open(msg, "wb") as f:
            f.write(message.encode("ascii"))
        with open(sig, "wb") as f:
            f.write(bytes.fromhex(signature_hex))
        result = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pubkey, "-rawin",
             "-in", msg, "-sigfile", sig],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return result.returncode == 0


def main():
    args = sys.argv[1:]
    pubkey = None
    if "--pubkey" in args:
        i = args.index("--pubkey")
        if i + 1 >= len(args):
            print(__doc__)
            sys.exit(2)
        pubkey = args[i + 1]
        del args[i:i + 2]
    if len(args) not in (1, 2):
        print(__doc__)
        sys.exit(2)
    prev = "0" * 64
    created = None
    last_type = None
    hashes = []
    checkpoints = []
    n = 0
    with open(args[0], encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\n")
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"line {number}: malformed JSON ({e})")
            if canonical(obj) != line:
                fail(f"line {number}: not in canonical form")
            if list(obj.keys()) == ["checkpoint"]:
                checkpoints.append(obj["checkpoint"])
                continue
            if checkpoints:
                fail(f"line {number}: an event after the checkpoints")
            n += 1
            event = obj
            claimed = event.pop("hash", None)
            if event.get("seq") != n:
                fail(f"seq {n}: gap or reorder (found seq {event.get('seq')})")
            if event.get("prev_hash") != prev:
                fail(f"seq {n}: prev_hash mismatch")
            body = canonical(event)
            actual = hashlib.sha256((event["prev_hash"] + body).encode("utf-8")).hexdigest()
            if actual != claimed:
                fail(f"seq {n}: hash mismatch")
            if event.get("type") == "run.created":
                created = event
            last_type = event.get("type")
            hashes.append(claimed)
            prev = claimed
    if n == 0:
        fail("no events")
    if len(args) == 2:
        if created is None:
            fail("no run.created event to check the definition against")
        with open(args[1], "rb") as definition:
            digest = hashlib.sha256(definition.read()).hexdigest()
        if digest != created["data"]["definition_sha256"]:
            fail("the definition file is not the one the run was pinned to")
    covered = 0
    checked_batches = set()
    for cp in checkpoints:
        seq = cp["seq"]
        if seq > n:
            fail(f"seq {seq}: truncated (a checkpoint signed seq {seq}; the ledger ends at {n})")
        if hashes[seq - 1] != cp["head"]:
            fail(f"seq {seq}: checkpoint mismatch (the signed head is not the chain's hash)")
        batch = cp["batch"]
        root = root_from_path(leaf_hash(cp["run_id"], seq, cp["head"]), cp["path"])
        if root != batch["root"]:
            fail(f"seq {seq}: the checkpoint is not in batch {batch['batch_seq']} (root mismatch)")
        if pubkey is not None and batch["batch_seq"] not in checked_batches:
            if not signature_verifies(pubkey, batch_message(batch), batch["signature"]):
                fail(f"seq {seq}: batch {batch['batch_seq']}'s signature does not verify")
            checked_batches.add(batch["batch_seq"])
        covered = max(covered, seq)
    if last_type in TERMINAL and covered < n:
        fail(f"seq {n}: unsigned stop (the run ended and no signed checkpoint covers it)")
    signed = f", {len(checkpoints)} checkpoints" + (" (signatures verified)" if pubkey else "")
    print(f"ok {n} events, head {prev}{signed}")


if __name__ == "__main__":
    main()
