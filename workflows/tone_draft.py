"""Tone-matched drafts: a message to the customer written the way they write.

The profile comes from the contact's past messages (see `workflows.tone`). The draft
comes from the model when one is configured and the context allows (the profile and a
couple of the shortest messages as examples; names and addresses travel as tokens), else
from a template adapted to the profile. Every draft gets a tone-match score against the
profile with the features that differ. Sending always needs a person, who may edit the
draft; at `thin` the draft is only saved for the account owner (an internal action).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from copilot import ActionKind, Level, Risk, StepContext, Workflow
from workflows.signals import SIGNALS, TONE, need
from workflows.tone import ToneMatch, ToneProfile, match, profile, split_messages

__all__ = ["SAVE_DRAFT", "SEND_EMAIL", "SIGNALS", "render_template", "tone_draft"]

PROMPT_VERSION = "tone_draft.write@1"
Purpose = Literal["check_in", "renewal", "onboarding"]
_COMMITMENT = re.compile(r"\b(refund|discount|credit|free|price|waive)\w*", re.I)


class DraftRequest(BaseModel):
    """Whom to write to and why."""

    subject_id: str = Field(min_length=1, max_length=200)
    purpose: Purpose = "check_in"


class Email(BaseModel):
    """The payload of `send_email`."""

    account_id: str = Field(min_length=1, max_length=200)
    to: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=5000)


class SavedDraft(BaseModel):
    """The payload of `save_draft`: kept for the account owner, not sent."""

    account_id: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=5000)


SEND_EMAIL = ActionKind(
    name="send_email",
    payload=Email,
    # A draft that promises money or terms is riskier to send.
    risk=lambda e: Risk.HIGH if _COMMITMENT.search(e.body) else Risk.MEDIUM,
    reaches_customer=True,
    requires_person=True,
    description="Send an email to the customer's contact",
    subject_fields=("account_id",),
    locked_fields=("to",),  # the contact's address from the subject's signals
)
SAVE_DRAFT = ActionKind(
    name="save_draft",
    payload=SavedDraft,
    risk=lambda d: Risk.LOW,
    description="Save a draft on the account for its owner (internal)",
    subject_fields=("account_id",),
)


class Profiled(BaseModel):
    """The request and the contact's tone profile."""

    request: DraftRequest
    profile: ToneProfile
    examples: int


class Draft(BaseModel):
    """A draft, how it was written, and how well it matches the tone."""

    request: DraftRequest
    profile: ToneProfile
    subject: str
    body: str
    method: Literal["model", "rules"]
    tone_match: ToneMatch
    action: Literal["send_email", "save_draft"] | None


class DraftResult(Draft):
    """The run's result: what the reviewer did with the draft."""

    status: str | None
    sent_body: str | None
    edited: bool


class Written(BaseModel):
    """What the model is asked for."""

    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=5000)


tone_draft = Workflow(
    TONE,
    "1",
    input=DraftRequest,
    description="A draft in the customer's own tone, with a tone-match score; a person sends it",
    signals=[
        need("recent_messages", 3, 180, required=True),
        need("contact_name", 1, 730),
        need("contact_email", 2, 730),
        need("account_name", 0.5, 730),
        need("plan_tier", 0.5, 730),
    ],
    actions=[SEND_EMAIL.name, SAVE_DRAFT.name],
    holdout=0.1,
)


@tone_draft.step
def learn_tone(ctx: StepContext, inp: DraftRequest) -> Profiled:
    """Profile the contact's past messages (stored with the run as an explainable vector)."""
    messages = split_messages(ctx.value("recent_messages", "") or "")
    return Profiled(request=inp, profile=profile(messages), examples=len(messages))


_BODIES: dict[str, dict[str, tuple[str, str]]] = {
    # language -> purpose -> (formal, casual)
    "en": {
        "check_in": (
            "I hope this message finds you well. I would like to schedule a short call to review "
            "how {account} is getting on and whether there is anything we can do to help.",
            "Hope all is well! Do you have 15 minutes this week to chat about how things are going "
            "at {account}?",
        ),
        "renewal": (
            "Your renewal is approaching, and I would like to make sure {account} has everything "
            "it needs. Could we arrange a brief conversation about the coming year?",
            "Your renewal is coming up soon. Let us find a few minutes to talk about what {account} "
            "needs next year?",
        ),
        "onboarding": (
            "I would like to make sure your team's onboarding is going smoothly. I would be glad "
            "to walk {account} through the remaining setup steps.",
            "Just checking in on onboarding. Happy to walk {account} through the last setup steps!",
        ),
    },
    "de": {
        "check_in": (
            "Ich hoffe, es geht Ihnen gut. Gerne würde ich einen kurzen Termin vereinbaren, um zu "
            "besprechen, wie es bei {account} läuft und wie wir helfen können.",
            "Hoffe, bei euch läuft alles gut! Hast du diese Woche 15 Minuten für ein kurzes "
            "Gespräch über {account}?",
        ),
        "renewal": (
            "Ihre Vertragsverlängerung steht bevor. Gerne bespreche ich mit Ihnen, was {account} "
            "im kommenden Jahr braucht.",
            "Eure Verlängerung steht bald an. Lass uns kurz sprechen, was {account} nächstes Jahr "
            "braucht?",
        ),
        "onboarding": (
            "Ich möchte sicherstellen, dass das Onboarding reibungslos verläuft, und begleite "
            "{account} gerne durch die letzten Schritte.",
            "Wie läuft das Onboarding? Ich zeige {account} gern die letzten Schritte!",
        ),
    },
    "es": {
        "check_in": (
            "Espero que se encuentre bien. Me gustaría programar una breve llamada para revisar "
            "cómo le va a {account} y en qué podemos ayudar.",
            "¡Espero que todo vaya bien! ¿Tienes 15 minutos esta semana para hablar de {account}?",
        ),
        "renewal": (
            "Su renovación se acerca y me gustaría asegurarme de que {account} tenga todo lo "
            "necesario. ¿Podemos conversar brevemente?",
            "¡Tu renovación está cerca! ¿Hablamos unos minutos sobre lo que {account} necesita?",
        ),
        "onboarding": (
            "Me gustaría asegurarme de que la incorporación avance sin problemas y con gusto "
            "acompañaré a {account} en los últimos pasos.",
            "¿Qué tal la incorporación? ¡Te ayudo con los últimos pasos de {account}!",
        ),
    },
}
_NOBODY = {"en": "team", "de": "Team", "es": "equipo"}  # when the contact's name is unknown
_SUBJECTS = {"check_in": "Checking in", "renewal": "Your renewal", "onboarding": "Onboarding"}
_CONTRACT = {
    "I would": "I'd", "I am": "I'm", "it is": "it's", "Let us": "Let's", "do not": "don't",
    "we will": "we'll", "you are": "you're", "there is": "there's",
}  # fmt: skip
_DEFAULTS = {"en": ("Dear", "Hi", "Kind regards", "Thanks"),
             "de": ("Guten Tag", "Hallo", "Mit freundlichen Grüßen", "Viele Grüße"),
             "es": ("Estimado/a", "Hola", "Saludos cordiales", "Saludos")}  # fmt: skip


def render_template(
    prof: ToneProfile, purpose: Purpose, *, name: str | None, account: str
) -> tuple[str, str]:
    """The rules path: (subject, body) in the profile's language, formality and habits."""
    lang = prof.language if prof.language in _BODIES else "en"
    formal = prof.formality >= 0.5 or prof.messages == 0
    body = _BODIES[lang][purpose][0 if formal else 1].format(account=account)
    if lang == "en":
        for long, short in _CONTRACT.items():
            body = body.replace(long, short) if prof.contraction_rate >= 0.5 else body
    if prof.exclamation_rate < 0.15:
        body = body.replace("!", ".")
    if prof.emoji_rate >= 0.5:
        body += " 🙂"
    d_formal, d_casual, s_formal, s_casual = _DEFAULTS[lang]
    greeting = prof.greeting or (d_formal if formal else d_casual)
    first = (name or "").split(" ")[0] if not formal else (name or "")
    sign_off = prof.sign_off or (s_formal if formal else s_casual)
    opener = f"{greeting} {first or _NOBODY[lang]}".strip() + ","
    return _SUBJECTS[purpose], f"{opener}\n\n{body}\n\n{sign_off},\nYour account team"


def _examples(ctx: StepContext) -> list[str]:
    messages = split_messages(ctx.value("recent_messages", "") or "")
    return sorted(messages, key=len)[:2]


@tone_draft.step
def write(ctx: StepContext, inp: Profiled) -> Draft:
    """Draft (model or template), score its tone, and propose sending it (or saving it)."""
    req, prof = inp.request, inp.profile
    account = ctx.value("account_name") or "your team"
    subject, body = render_template(
        prof, req.purpose, name=ctx.value("contact_name"), account=account
    )
    method: Literal["model", "rules"] = "rules"
    if ctx.model.available and ctx.level in (Level.FULL, Level.PARTIAL):
        call = ctx.ask(
            Written,
            f"Write a short email for the purpose '{req.purpose}' to the contact, in their own "
            "tone. Match the tone profile in the data (formality 0-1, words per sentence, "
            "greeting, sign-off, emoji, exclamation marks, contractions, language) and the "
            "style of the example messages. "
            + ("Address the contact as [[contact_name]]. " if ctx.value("contact_name") else "")
            + "Promise nothing about prices, refunds or credits.",
            signals=["contact_name", "account_name", "plan_tier"],
            facts={
                "profile": prof.model_dump(),
                "examples": _examples(ctx),
                "purpose": req.purpose,
            },
            prompt_version=PROMPT_VERSION,
        )
        if call.value is not None:
            subject, body, method = call.value.subject, call.value.body, "model"
    tone = match(body, prof)
    email = ctx.value("contact_email")
    confidence = ctx.degradation.cap(0.4 + 0.6 * tone.score)
    why = (
        f"A {req.purpose.replace('_', '-')} note in the contact's tone "
        f"(match {tone.score:.0%} over {inp.examples} past messages)."
    )
    action: Literal["send_email", "save_draft"] | None = None
    if email and ctx.level in (Level.FULL, Level.PARTIAL):
        action = "send_email"
        payload = {"account_id": req.subject_id, "to": email, "subject": subject, "body": body}
    else:
        action = "save_draft"
        payload = {"account_id": req.subject_id, "subject": subject, "body": body}
    ctx.propose(action, payload, confidence=confidence, why=why)
    return Draft(
        request=req,
        profile=prof,
        subject=subject,
        body=body,
        method=method,
        tone_match=tone,
        action=action,
    )


@tone_draft.step
def deliver(ctx: StepContext, draft: Draft) -> DraftResult:
    """What the reviewer did: sent as written, sent after an edit, or not sent."""
    outcomes = (ctx.decision or {}).get("approvals", [])
    first = outcomes[0] if outcomes else {}
    sent = first.get("payload", {}).get("body") if first.get("executed") else None
    return DraftResult(
        **draft.model_dump(),
        status=first.get("status"),
        sent_body=sent,
        edited=int(first.get("version") or 1) > 1,
    )
