"""Tone profiles: an explainable feature vector of how someone writes, and a match score.

Every feature is something a reviewer can check by reading the messages: how formal,
how long the sentences, which greeting and sign-off, how many emoji and exclamation
marks, how often contractions, how long the words, which language. The match score
compares a draft's features with the profile's, feature by feature, and names the ones
that differ.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field

Language = Literal["en", "de", "es", "unknown"]

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_WORD = re.compile(r"[A-Za-zÀ-ÿ']+")
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
_CONTRACTION = re.compile(
    r"\b\w+'(?:s|re|ve|ll|d|m|t)\b|\b(?:don|can|won|isn|aren|didn|doesn)'t\b", re.I
)
GREETINGS = ("Dear", "Hello", "Hi", "Hey", "Hallo", "Hola", "Guten Tag", "Estimado")
SIGN_OFFS = (
    "Kind regards", "Best regards", "Regards", "Sincerely", "Best", "Thanks", "Thank you",
    "Cheers", "Viele Grüße", "Mit freundlichen Grüßen", "Saludos", "Gracias",
)  # fmt: skip
_FORMAL = {"dear", "regards", "sincerely", "kindly", "please", "would", "appreciate", "estimado"}
_INFORMAL = {"hey", "thanks", "cheers", "lol", "btw", "gonna", "awesome", "cool", "yeah"}
_STOP = {
    "en": {"the", "and", "is", "we", "you", "to", "of", "it", "for", "our", "with", "that"},
    "de": {"der", "die", "das", "und", "ist", "wir", "sie", "nicht", "mit", "ich", "für", "ein"},
    "es": {"el", "la", "los", "y", "es", "que", "de", "para", "con", "nosotros", "por", "una"},
}


class ToneProfile(BaseModel):
    """How a person writes, as features a person can verify."""

    messages: int = Field(ge=0)
    formality: float = Field(ge=0, le=1, description="0 casual … 1 formal")
    sentence_words: float = Field(ge=0, description="mean words per sentence")
    greeting: str | None
    sign_off: str | None
    emoji_rate: float = Field(ge=0, description="emoji per message")
    exclamation_rate: float = Field(ge=0, description="exclamation marks per sentence")
    contraction_rate: float = Field(ge=0, le=1, description="share of messages with contractions")
    word_length: float = Field(ge=0, description="mean letters per word")
    language: Language


class FeatureGap(BaseModel):
    """One feature where a draft differs from the profile."""

    feature: str
    profile: float | str | None
    draft: float | str | None
    gap: float


class ToneMatch(BaseModel):
    """How well a draft matches a profile (1 = indistinguishable on every feature)."""

    score: float = Field(ge=0, le=1)
    differs: list[FeatureGap]


def split_messages(text: str) -> list[str]:
    """Messages stored as one text signal, separated by lines of `---`."""
    return [m.strip() for m in re.split(r"^\s*-{3,}\s*$", text, flags=re.M) if m.strip()]


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0].strip().lower() if message.strip() else ""


def _opening(message: str) -> str | None:
    line = _first_line(message)
    return next((g for g in GREETINGS if re.match(rf"{re.escape(g.lower())}\b", line)), None)


def _closing(message: str) -> str | None:
    lines = [ln.strip().lower().rstrip(",.!") for ln in message.strip().splitlines() if ln.strip()]
    for line in reversed(lines[-3:]):
        found = next((s for s in SIGN_OFFS if line.startswith(s.lower())), None)
        if found:
            return found
    return None


def _language(words: list[str]) -> Language:
    counts = {lang: sum(w in stop for w in words) for lang, stop in _STOP.items()}
    lang, n = max(counts.items(), key=lambda kv: kv[1])
    return lang if n >= 2 else "unknown"  # type: ignore[return-value]


def profile(messages: list[str]) -> ToneProfile:
    """The tone profile of `messages` (an empty list gives a neutral profile)."""
    sentences = [s.strip() for m in messages for s in _SENTENCE.findall(m) if _WORD.search(s)]
    words = [w.lower() for m in messages for w in _WORD.findall(m)]
    n = max(len(messages), 1)
    formal = sum(w in _FORMAL for w in words)
    informal = sum(w in _INFORMAL for w in words) + sum(m.count("!") for m in messages) / 2
    informal += len(_EMOJI.findall(" ".join(messages))) + len(
        _CONTRACTION.findall(" ".join(messages))
    )
    greetings = Counter(g for g in map(_opening, messages) if g)
    sign_offs = Counter(s for s in map(_closing, messages) if s)
    return ToneProfile(
        messages=len(messages),
        formality=round((formal + 1) / (formal + informal + 2), 3),
        sentence_words=round(
            sum(len(_WORD.findall(s)) for s in sentences) / max(len(sentences), 1), 2
        ),
        greeting=greetings.most_common(1)[0][0] if greetings else None,
        sign_off=sign_offs.most_common(1)[0][0] if sign_offs else None,
        emoji_rate=round(sum(len(_EMOJI.findall(m)) for m in messages) / n, 3),
        exclamation_rate=round(sum(s.count("!") for s in sentences) / max(len(sentences), 1), 3),
        contraction_rate=round(sum(bool(_CONTRACTION.search(m)) for m in messages) / n, 3),
        word_length=round(sum(len(w) for w in words) / max(len(words), 1), 2),
        language=_language(words),
    )


# (feature, weight, scale): a gap of `scale` or more counts as completely different.
_NUMERIC = (
    ("formality", 3.0, 0.5),
    ("sentence_words", 2.0, 12.0),
    ("emoji_rate", 1.0, 1.0),
    ("exclamation_rate", 1.0, 0.5),
    ("contraction_rate", 1.5, 1.0),
    ("word_length", 1.0, 2.0),
)
_CATEGORICAL = (("greeting", 1.0), ("sign_off", 1.0), ("language", 3.0))


def match(draft: str, target: ToneProfile) -> ToneMatch:
    """Score `draft` against `target`; the features whose gap is over a quarter are named."""
    mine = profile([draft])
    gaps: list[FeatureGap] = []
    total = weighted = 0.0
    for name, weight, scale in _NUMERIC:
        a, b = getattr(target, name), getattr(mine, name)
        gap = min(abs(a - b) / scale, 1.0)
        gaps.append(FeatureGap(feature=name, profile=a, draft=b, gap=round(gap, 3)))
        total, weighted = total + weight, weighted + weight * gap
    for name, weight in _CATEGORICAL:
        a, b = getattr(target, name), getattr(mine, name)
        gap = 0.0 if a is None or a == b else 1.0  # no habit in the profile: anything goes
        gaps.append(FeatureGap(feature=name, profile=a, draft=b, gap=gap))
        total, weighted = total + weight, weighted + weight * gap
    return ToneMatch(
        score=round(1 - weighted / total, 3),
        differs=sorted((g for g in gaps if g.gap > 0.25), key=lambda g: -g.gap),
    )
