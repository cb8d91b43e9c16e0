"""A writer process for the concurrency tests.

    python -m tests.support.audit_writer URL STREAM WRITER START COUNT ACKFILE

Appends one event per transaction with idempotency key `w<WRITER>-<i>` for i in
[START, COUNT) and records each i in ACKFILE only after its append returned. A writer
restarted after SIGKILL resumes after its last acknowledged i; the append it may have
committed but not acknowledged is redelivered and must be a no-op.
"""

from __future__ import annotations

import sys

from audit import Actor, AuditEvent, SqlAuditStore
from audit.db import create_engine


def main(url: str, stream: str, writer: int, start: int, count: int, ackfile: str) -> None:
    store = SqlAuditStore(create_engine(url))
    with open(ackfile, "a", buffering=1) as acks:  # noqa: PTH123 - line-buffered on purpose
        for i in range(start, count):
            event = AuditEvent(
                event_type="step.completed",
                actor=Actor.system(f"writer-{writer}"),
                run_id=f"run-{writer}-{i // 10}",
                data={"writer": writer, "i": i},
                personal={"note": f"entry {i}"} if i % 7 == 0 else None,
                idempotency_key=f"w{writer}-{i}",
            )
            store.append(stream, [event])
            acks.write(f"{i}\n")


if __name__ == "__main__":
    url, stream, writer, start, count, ackfile = sys.argv[1:]
    main(url, stream, int(writer), int(start), int(count), ackfile)
