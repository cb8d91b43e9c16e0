"""Export bundles: everything an auditor needs to verify a trail offline, with the CLI alone.

Layout (deterministic: the same trail always gives the same bytes):

    manifest.json                  {"format": "copilot.audit.bundle.v1",
                                    "streams": {stream: {"dir", "entries", "head"}},
                                    "keys": [key_id, ...],
                                    "payloads": "withheld" | "included"}
    keys/<key_id>.pem              public keys that signed the checkpoints
    streams/<dir>/entries.jsonl    {"body", "commitment", "hash", "prev_hash", "seq"} per line;
                                   "body" is the entry's exact canonical bytes as a JSON string
    streams/<dir>/payloads.jsonl   {"payload", "salt", "seq"} for erasable payloads still held;
                                   only when the payloads are included
    streams/<dir>/checkpoints.jsonl

Erasable payloads (personal data: emails, message bodies) are withheld by default: each
entry's hash covers its payload's commitment, so a bundle without them verifies just as
well, only not what the payloads said. Including them is the caller's explicit choice
(`copilot audit export --include-payloads`, which records an `audit.exported` event
first). A manifest without "payloads" is an older bundle, which always included them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

from audit.canonical import canonical
from audit.errors import BundleError
from audit.model import Checkpoint
from audit.signing import load_public_key, public_pem
from audit.trail import Trail
from audit.verify import ERASED_EVENT, Row, Verdict, tombstoned, verify_chain

FORMAT = "copilot.audit.bundle.v1"
WITHHELD, INCLUDED = "withheld", "included"


def _hex(b: bytes | None) -> str | None:
    return b.hex() if b is not None else None


def export_bundle(
    trail: Trail, directory: Path, streams: list[str] | None = None, *, payloads: bool = False
) -> dict[str, int]:
    """Write a bundle of `streams` (default: all) to `directory`; returns entries per stream.

    Erasable payloads go in only with `payloads=True` (see the module docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "keys").mkdir(exist_ok=True)
    names = sorted(streams if streams is not None else trail.store.streams())
    manifest: dict[str, object] = {
        "format": FORMAT, "streams": {}, "keys": [],
        "payloads": INCLUDED if payloads else WITHHELD,
    }  # fmt: skip
    key_ids: set[str] = set()
    counts: dict[str, int] = {}
    for stream in names:
        trail.store.settle(stream)
        sub = directory / "streams" / quote(stream, safe="")
        sub.mkdir(parents=True, exist_ok=True)
        n, head = 0, None
        with ExitStack() as files:
            ef = files.enter_context((sub / "entries.jsonl").open("wb"))
            pf = files.enter_context((sub / "payloads.jsonl").open("wb")) if payloads else None
            for row in trail.store.rows(stream):
                ef.write(canonical(_entry_line(row)) + b"\n")
                if pf is not None and row.payload is not None and row.salt is not None:
                    line = {"seq": row.seq, "salt": row.salt.hex(), "payload": row.payload.decode()}
                    pf.write(canonical(line) + b"\n")
                n, head = row.seq, row.hash.hex()
        cps = trail.known_checkpoints(stream)
        with (sub / "checkpoints.jsonl").open("wb") as cf:
            for cp in cps:
                cf.write(canonical(cp.model_dump()) + b"\n")
                key_ids.add(cp.key_id)
        streams_doc = manifest["streams"]
        assert isinstance(streams_doc, dict)
        streams_doc[stream] = {"dir": sub.name, "entries": n, "head": head}
        counts[stream] = n
    keys = trail.trusted_keys()
    for kid in sorted(key_ids | set(keys)):
        if kid in keys:
            (directory / "keys" / f"{kid}.pem").write_bytes(public_pem(keys[kid]))
    manifest["keys"] = sorted(k for k in key_ids | set(keys) if k in keys)
    (directory / "manifest.json").write_bytes(canonical(manifest) + b"\n")
    return counts


def _entry_line(row: Row) -> dict[str, object]:
    return {
        "seq": row.seq,
        "prev_hash": row.prev_hash.hex(),
        "hash": row.hash.hex(),
        "commitment": _hex(row.commitment),
        "body": row.body.decode(),
    }


def read_manifest(directory: Path) -> dict[str, object]:
    """The bundle's manifest, checked for format."""
    path = directory / "manifest.json"
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BundleError(
            f"{path} is not a readable bundle manifest: {exc}", path=str(path)
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError(f"{path} is not a {FORMAT} manifest", path=str(path))
    return doc


def bundle_keys(directory: Path) -> dict[str, bytes]:
    """Public keys shipped in the bundle, by key id."""
    keys: dict[str, bytes] = {}
    for pem in sorted((directory / "keys").glob("*.pem")):
        raw = load_public_key(pem.read_bytes())
        from audit.signing import key_id

        keys[key_id(raw)] = raw
    return keys


def verify_bundle(
    directory: Path, *, trusted_keys: Mapping[str, bytes] | None = None
) -> list[Verdict]:
    """Verify every stream in a bundle without a database.

    Trusts the bundle's own keys unless `trusted_keys` is given: pass the keys you know
    independently (`copilot audit verify --bundle DIR --key KEY.pem`) to rule out a forged
    bundle signed by a key of the forger's.
    """
    manifest = read_manifest(directory)
    withheld = payloads_withheld(manifest)
    keys = dict(trusted_keys) if trusted_keys is not None else bundle_keys(directory)
    streams = manifest.get("streams")
    if not isinstance(streams, dict):
        raise BundleError("manifest has no streams map")
    verdicts = []
    for stream, info in sorted(streams.items()):
        sub = directory / "streams" / str(info["dir"])
        cps = [Checkpoint.model_validate_json(line) for line in _lines(sub / "checkpoints.jsonl")]
        erased = tombstoned(
            (int(doc["seq"]), doc["body"].encode())
            for doc in (
                json.loads(line) for line in _lines(sub / "entries.jsonl") if ERASED_EVENT in line
            )
        )
        verdict = verify_chain(
            stream, _bundle_rows(sub, withheld), checkpoints=cps, trusted_keys=keys,
            erased=erased, payloads_withheld=withheld,
            indexed=False,  # a bundle carries no index columns: its queries are the body's
        )  # fmt: skip
        verdicts.append(_against_manifest(verdict, info))
    return verdicts


def _against_manifest(verdict: Verdict, info: dict[str, Any]) -> Verdict:
    """A bundle whose chain is not the one its manifest describes, or is unsigned, fails."""
    if not verdict.ok:
        return verdict
    if verdict.entries != info.get("entries"):
        return Verdict(
            verdict.stream,
            verdict.entries,
            verdict.checkpoints,
            verdict.entries + 1,
            "manifest_mismatch",
            f"manifest says {info.get('entries')} entries",
        )
    if verdict.entries and verdict.checkpoints == 0:
        return Verdict(
            verdict.stream,
            verdict.entries,
            0,
            1,
            "unsigned",
            "the bundle carries no signed checkpoint: nothing vouches for this chain",
        )
    return verdict


def _lines(path: Path) -> Iterator[str]:
    if not path.exists():
        raise BundleError(f"bundle file {path} is missing", path=str(path))
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield line


def payloads_withheld(manifest: Mapping[str, object]) -> bool:
    """Whether the bundle leaves its erasable payloads out (older bundles have them all)."""
    held = manifest.get("payloads", INCLUDED)
    if held not in (WITHHELD, INCLUDED):
        raise BundleError(f"manifest says payloads are {held!r}; expected withheld or included")
    return held == WITHHELD


def _bundle_rows(sub: Path, withheld: bool = False) -> Iterator[Row]:
    payload_iter = (
        iter(()) if withheld else (json.loads(line) for line in _lines(sub / "payloads.jsonl"))
    )
    nxt = next(payload_iter, None)
    for line in _lines(sub / "entries.jsonl"):
        try:
            d = json.loads(line)
            seq = int(d["seq"])
            commitment = bytes.fromhex(d["commitment"]) if d["commitment"] else None
            row = Row(
                seq, bytes.fromhex(d["prev_hash"]), bytes.fromhex(d["hash"]), commitment,
                d["body"].encode(), None, None,
            )  # fmt: skip
        except (KeyError, ValueError, TypeError) as exc:
            raise BundleError(f"malformed entry line in {sub.name}: {exc}") from exc
        while nxt is not None and int(nxt["seq"]) < seq:
            nxt = next(payload_iter, None)
        if nxt is not None and int(nxt["seq"]) == seq:
            row = row._replace(salt=bytes.fromhex(nxt["salt"]), payload=nxt["payload"].encode())
        yield row
