"""COPILOT_LLM=docs.examples.configuration.chat_factory:make_chat — a chat model built in code.

Any LangChain chat model works: a factory is for what `provider:model` cannot say (a
gateway URL, headers, a fine-tuned deployment). It takes no arguments; read your own
settings inside it.
"""

from __future__ import annotations

import os

from langchain_ollama import ChatOllama


def make_chat() -> ChatOllama:
    """The chat model copilot calls (structured output, one repair, then the rules)."""
    return ChatOllama(
        model=os.environ.get("ACME_MODEL", "llama3.2"),
        base_url=os.environ.get("ACME_OLLAMA_URL", "http://127.0.0.1:11434"),
        temperature=0,
    )


if __name__ == "__main__":
    from copilot.llm import make_model

    # What a worker does with COPILOT_LLM; building the client makes no network call.
    for llm in ("ollama:llama3.2", "docs.examples.configuration.chat_factory:make_chat"):
        model = make_model(llm)
        print(f"{llm} -> {type(model.chat).__name__}")
