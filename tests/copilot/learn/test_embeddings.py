"""Embeddings through LangChain's interface: the offline default, OpenAI via the stub, cold start."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from copilot.learn import EmbeddingError
from copilot.learn.embeddings import StaticEmbeddings, embed_descriptions, make_embeddings
from copilot.learn.policy import LearnedPolicy
from copilot.learn.train import train
from copilot.ranking import Candidate, PolicyInput
from tests.support.openai_stub import StubServer
from tests.support.simulator import CANDIDATES, DESCRIPTIONS, Simulator, candidates, logged


def test_the_offline_default_embeds_with_the_hub_offline_and_no_torch_installed() -> None:
    """The model is in the wheel: no hub, no proxy, and torch is not even installed."""
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                       "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})  # fmt: skip
    e = make_embeddings("offline")
    assert e is not None
    vectors = e.embed_documents(["a guided tour", "a webinar"])
    assert [len(v) for v in vectors] == [64, 64]
    assert importlib.util.find_spec("torch") is None


def test_similar_descriptions_are_near_and_different_ones_far() -> None:
    e = StaticEmbeddings()
    assert isinstance(e, Embeddings)
    tour, walk, webinar = (np.array(v) for v in e.embed_documents(
        [DESCRIPTIONS["tour"], DESCRIPTIONS["walkthrough"], DESCRIPTIONS["webinar"]]))  # fmt: skip
    assert tour @ walk > 0.6 > tour @ webinar
    assert e.embed_query(DESCRIPTIONS["tour"]) == pytest.approx(tour.tolist())


def test_openai_embeddings_go_through_the_stub_as_text(openai_stub: StubServer) -> None:
    e = make_embeddings("openai:text-embedding-3-small")
    assert e is not None
    vectors = embed_descriptions(e, {"tour": DESCRIPTIONS["tour"], "none": None})
    assert list(vectors) == ["tour"] and len(vectors["tour"]) == 16
    sent = openai_stub.requests[-1]
    assert sent["model"] == "text-embedding-3-small" and sent["input"] == [DESCRIPTIONS["tour"]]


def test_an_unknown_embeddings_setting_is_a_clear_error() -> None:
    with pytest.raises(EmbeddingError) as err:
        make_embeddings("word2vec")
    assert err.value.code == "learn.embedding" and "COPILOT_EMBEDDINGS" in err.value.message
    assert make_embeddings("none") is None


def test_a_new_candidate_starts_from_its_most_similar_described_neighbours() -> None:
    """`walkthrough` was never shown; its description is nearest to `tour`'s, so it scores like tour."""
    n = 4000
    sim = Simulator(8)
    ctx = sim.contexts(n)
    chosen = sim.rng.choice(len(CANDIDATES), size=n)
    data = logged(ctx, chosen, np.full(n, 0.25), sim.joined(ctx, chosen))
    vectors = embed_descriptions(StaticEmbeddings(), DESCRIPTIONS)
    artifact = train(data, surface="onboarding", window=(0.0, 1.0), descriptions=vectors)
    cold = artifact.models["walkthrough"]
    assert cold.source == "cold_start" and cold.n == 0 and cold.neighbors[0] == "tour"
    eligible = [*candidates(), Candidate(id="walkthrough", order=9)]
    heavy = {"segment": "majority", "usage": 2.0, "seats": 0.0, "mobile": False}
    choice = LearnedPolicy(artifact).choose(PolicyInput(
        surface="onboarding", subject_id="s", features=heavy, eligible=eligible), 0.5)  # fmt: skip
    assert "not enough evidence" not in choice.reason  # the model decides, not the fallback
    ranked = sorted(choice.distribution, key=lambda c: -choice.distribution[c])
    assert set(ranked[:2]) == {"tour", "walkthrough"}
