"""COPILOT_LLM beyond OpenAI: LangChain's init_chat_model, and a factory path.

The second provider is Ollama: the real `ollama` client (langchain-ollama) over real HTTP
to a local Ollama-compatible stub, so "any LangChain chat model" is shown, not stated.
"""

from __future__ import annotations

import json
import sys
import types

import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from copilot.errors import ConfigError
from copilot.llm import make_model
from tests.support.ollama_stub import ollama_stub


class Verdict(BaseModel):
    headline: str
    score: int


def test_an_ollama_model_is_resolved_by_init_chat_model_and_called_over_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given COPILOT_LLM=ollama:<model> and an Ollama server, a structured call goes to
    /api/chat with the data inside <data>, and a bad first reply gets the one repair."""
    with ollama_stub() as stub:
        monkeypatch.setenv("OLLAMA_HOST", stub.url)
        model = make_model("ollama:llama3.2", timeout=5)
        assert type(model.chat).__name__ == "ChatOllama" and model.name == "ollama:llama3.2"
        stub.replies += ["Sure, it looks fine!", json.dumps({"headline": "Growing", "score": 80})]
        call = model.structured(Verdict, "Judge the account.", {"nps": 40}, prompt_version="v1")
    assert call.value == Verdict(headline="Growing", score=80) and call.attempts == 2
    first = stub.requests[0]
    assert first["path"] == "/api/chat" and first["model"] == "llama3.2"
    assert "<data>" in first["messages"][1]["content"] and '"nps": 40' in first["messages"][1]["content"]
    assert "did not match the schema" in stub.requests[1]["messages"][-1]["content"]
    assert call.usage["total_tokens"] == 2 * 30


def test_a_provider_whose_server_fails_is_a_fault_never_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with ollama_stub() as stub:
        monkeypatch.setenv("OLLAMA_HOST", stub.url)
        call = make_model("ollama:llama3.2", timeout=5).structured(
            Verdict, "Judge.", {}, prompt_version="v1"
        )  # nothing scripted: the stub answers 500
    assert call.value is None and call.fault == "model_error"


def test_a_factory_path_builds_the_chat_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dotted module path (`acme.llm:make_chat` or `acme.llm.make_chat`) names a factory;
    `provider:model` stays unambiguous because a provider has no dot."""
    package, module = types.ModuleType("acme"), types.ModuleType("acme.llm")
    module.make_chat = lambda: ChatOpenAI(model="acme-model", api_key="k")  # type: ignore[attr-defined]
    module.not_a_model = lambda: "text"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "acme", package)
    monkeypatch.setitem(sys.modules, "acme.llm", module)
    for spelling in ("acme.llm:make_chat", "acme.llm.make_chat"):
        model = make_model(spelling)
        assert isinstance(model.chat, ChatOpenAI) and model.chat.model_name == "acme-model"
    with pytest.raises(ConfigError, match="returned str, not a LangChain chat model"):
        make_model("acme.llm:not_a_model")
    with pytest.raises(ConfigError, match=r"cannot load 'nope' from module 'acme\.llm'"):
        make_model("acme.llm.nope")


def test_an_unknown_provider_or_a_missing_integration_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="COPILOT_LLM='nosuch:model'") as info:
        make_model("nosuch:model")
    assert info.value.code == "config.invalid"
    with pytest.raises(ConfigError, match="pip install langchain-"):
        make_model("bedrock_converse:anthropic.claude-3")  # langchain-aws is not installed
