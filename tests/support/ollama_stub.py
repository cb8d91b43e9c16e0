"""A local Ollama-compatible HTTP server: `POST /api/chat`, scripted replies, requests kept.

The second provider's boundary, like `openai_stub` for OpenAI: the real `ollama` client
(through `langchain-ollama`, resolved by LangChain's `init_chat_model`) talks to it over
real HTTP. A reply is one JSON object on one line, which is both Ollama's non-streamed
answer and a stream of one final chunk, whichever the client asked for.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OllamaStub:
    """Each `/api/chat` request takes the next scripted content (else an error 500)."""

    def __init__(self) -> None:
        self.replies: list[str] = []
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                stub.requests.append({"path": self.path, **body})
                content = stub.replies.pop(0) if stub.replies else None
                if self.path != "/api/chat" or content is None:
                    self._send(500, {"error": f"nothing scripted for {self.path}"})
                    return
                self._send(200, {
                    "model": body.get("model"), "created_at": "2026-01-01T00:00:00Z",
                    "message": {"role": "assistant", "content": content},
                    "done": True, "done_reason": "stop",
                    "prompt_eval_count": 21, "eval_count": 9,
                })  # fmt: skip

            def _send(self, status: int, doc: dict[str, Any]) -> None:
                data = (json.dumps(doc) + "\n").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """For OLLAMA_HOST."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def ollama_stub() -> Iterator[OllamaStub]:
    """A running stub, shut down afterwards."""
    stub = OllamaStub()
    stub.thread.start()
    try:
        yield stub
    finally:
        stub.server.shutdown()
        stub.server.server_close()
