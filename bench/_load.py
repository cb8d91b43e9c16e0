"""A small HTTP/1.1 load generator: keep-alive connections on asyncio, one process.

Reads a JSON spec on stdin: {"host", "port", "requests": [raw request text, ...],
"connections", "seconds", "warmup"}; each connection sends the requests in turn (each
waits for its response) and times every one. Prints {"count", "errors", "rps", "p50_ms",
"p99_ms"} as one JSON line. Runs in its own process so the server's figures are not
bent by the client sharing its interpreter.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time


async def _connection(
    host: str, port: int, requests: list[bytes], start: int, until: float, measure_from: float,
    out: list[float], errors: list[int],
) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    i = start
    try:
        while (now := time.perf_counter()) < until:
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if now >= measure_from:
                out.append(time.perf_counter() - now)
                if head[9:10] != b"2":
                    errors.append(int(head[9:12]))
    finally:
        writer.close()
        await writer.wait_closed()


async def _run(spec: dict[str, object]) -> dict[str, float]:
    requests = [str(r).encode() for r in spec["requests"]]  # type: ignore[attr-defined]
    start = time.perf_counter()
    measure_from = start + float(spec["warmup"])  # type: ignore[arg-type]
    until = measure_from + float(spec["seconds"])  # type: ignore[arg-type]
    latencies: list[float] = []
    errors: list[int] = []
    await asyncio.gather(
        *(
            _connection(str(spec["host"]), int(spec["port"]), requests, n * 7, until,  # type: ignore[call-overload]
                        measure_from, latencies, errors)
            for n in range(int(spec["connections"]))  # type: ignore[call-overload]
        )
    )  # fmt: skip
    q = statistics.quantiles(latencies, n=100)
    return {
        "count": len(latencies),
        "errors": len(errors),
        "rps": len(latencies) / float(spec["seconds"]),  # type: ignore[arg-type]
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": q[98] * 1000,
    }


def request(
    method: str, path: str, host: str, *, token: str | None = None, body: bytes = b""
) -> str:
    """A raw HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return "\r\n".join(lines) + "\r\n\r\n" + body.decode()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_run(json.load(sys.stdin)))))
