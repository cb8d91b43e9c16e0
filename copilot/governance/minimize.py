"""Minimization at the model boundary: only declared signals leave, personal values as tokens.

What a step sends a model is built here, never by hand:
- only signals the workflow needs *and* the registry declares for that workflow; any other
  name is refused (`model.undeclared_signal`), special-category signals never leave
  (`model.special_signal`);
- a `personal` string signal (a name, an email) travels as a token such as
  `[[contact_name]]`; `personal` free text is scrubbed: every known personal value, email
  address and phone number in it becomes a token;
- derived facts and the instructions are scrubbed the same way, as a safety net;
- the reply is restored: tokens in it are replaced by the values they stand for, so a
  draft can greet the customer by name without the model ever seeing the name.

>>> p = Pseudonymizer()
>>> p.token("Ada Lovelace", "contact_name")
'[[contact_name]]'
>>> p.scrub("Write to Ada Lovelace at ada@example.com")
'Write to [[contact_name]] at [[email_1]]'
>>> p.restore("Dear [[contact_name]],")
'Dear Ada Lovelace,'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from copilot.errors import CopilotError
from copilot.governance.signals import Sensitivity, SignalRegistry
from copilot.governance.sources import SignalValue

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# Phone numbers: 7+ digits, written with a leading + or 00 or with separators (spaces,
# dashes, parentheses) between groups; dates, amounts and bare ids are not phone numbers.
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d\s()\-]{5,}\d(?![\w])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TOKEN = re.compile(r"\[\[[a-z0-9_.]+\]\]")
LEFTOVER = re.compile(r"\[\[[^\]\s]{1,100}\]\]")


class Pseudonymizer:
    """A reversible mapping between personal values and tokens, for one model exchange."""

    def __init__(self) -> None:
        self._by_value: dict[str, str] = {}
        self._by_token: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def token(self, value: str, label: str) -> str:
        """The token standing for `value` (the same value always gets the same token)."""
        found = self._by_value.get(value.casefold())
        if found is not None:
            return found
        n = self._counts.get(label, 0) + 1
        self._counts[label] = n
        token = f"[[{label}]]" if n == 1 and not label.startswith(("email", "phone")) else None
        token = token or f"[[{label}_{n}]]"
        self._by_value[value.casefold()] = token
        self._by_token[token] = value
        return token

    def scrub(self, text: str) -> str:
        """`text` with every known personal value, email and phone number tokenized."""
        # Addresses and numbers first: a name part inside an email must not break it up.
        text = _EMAIL.sub(lambda m: self.token(m.group(0), "email"), text)
        text = _PHONE.sub(lambda m: self._phone(m.group(0)), text)
        for value in sorted(self._by_token.values(), key=len, reverse=True):
            pattern = re.compile(rf"(?<!\w){re.escape(value)}(?!\w)", re.IGNORECASE)
            text = pattern.sub(self._by_value[value.casefold()], text)
        return text

    def _phone(self, found: str) -> str:
        digits = sum(c.isdigit() for c in found)
        shaped = found.startswith(("+", "00")) or any(c in found for c in " -()")
        if digits < 7 or not shaped or _DATE.fullmatch(found.strip()):
            return found
        return self.token(found, "phone")

    def scrub_any(self, value: Any) -> Any:
        """Scrub every string inside a JSON-like value."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, Mapping):
            return {k: self.scrub_any(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_any(v) for v in value]
        return value

    def restore(self, value: Any) -> Any:
        """Replace tokens by the values they stand for, in every string of a JSON-like value."""
        if isinstance(value, str):
            return _TOKEN.sub(lambda m: self._by_token.get(m.group(0), m.group(0)), value)
        if isinstance(value, Mapping):
            return {k: self.restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.restore(v) for v in value]
        return value

    def mapping(self) -> dict[str, str]:
        """Token -> value, to store with a conversation that spans rounds (personal: erasable)."""
        return dict(self._by_token)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> Pseudonymizer:
        """A pseudonymizer that continues a stored conversation."""
        pseudo = cls()
        for token, value in mapping.items():
            pseudo._by_token[token] = value
            pseudo._by_value[value.casefold()] = token
            label = token.strip("[]").rsplit("_", 1)
            key = label[0] if len(label) == 2 and label[1].isdigit() else token.strip("[]")
            pseudo._counts[key] = pseudo._counts.get(key, 0) + 1
        return pseudo

    @property
    def values(self) -> list[str]:
        """The personal values this exchange has tokenized."""
        return list(self._by_token.values())


def model_payload(
    registry: SignalRegistry,
    workflow: str,
    needs: Sequence[str],
    available: Mapping[str, SignalValue],
    names: Sequence[str],
    facts: Mapping[str, Any],
) -> tuple[dict[str, Any], Pseudonymizer]:
    """The `<data>` document for a model call, and the pseudonymizer that can restore its reply.

    Raises CopilotError for a name the workflow does not declare (`model.undeclared_signal`)
    or a special-category signal (`model.special_signal`): both are bugs in the step, and
    the run fails rather than leak.
    """
    pseudo = Pseudonymizer()
    specs = []
    for name in names:
        spec = registry.get(name)
        if spec is None or name not in needs or workflow not in spec.workflows:
            raise CopilotError(
                f"{workflow} may not send signal {name!r} to a model: it is not declared for "
                "this workflow (declare it, with purpose and retention, and list the workflow)",
                code="model.undeclared_signal",
                signal=name,
            )
        if spec.sensitivity == Sensitivity.SPECIAL:
            raise CopilotError(
                f"signal {name!r} is a special category and never reaches a model",
                code="model.special_signal",
                signal=name,
            )
        specs.append(spec)
    # Whole-value personal strings first, so free text mentioning them is scrubbed too.
    for spec in specs:
        held = available.get(spec.name)
        whole = spec.sensitivity == Sensitivity.PERSONAL and spec.type != "text"
        if whole and held is not None and isinstance(held.value, str) and held.value.strip():
            pseudo.token(held.value, spec.name)
            parts = held.value.split()
            for part in parts if len(parts) > 1 else ():  # "Ada" alone is as personal as "Ada L."
                if len(part) >= 2 and part[0].isalpha():
                    pseudo.token(part, f"{spec.name}_part")
    signals: dict[str, Any] = {}
    for spec in specs:
        held = available.get(spec.name)
        if held is None:
            continue
        value = held.value
        if spec.sensitivity == Sensitivity.PERSONAL and isinstance(value, str):
            value = pseudo.scrub(value)
        signals[spec.name] = value
    return {"signals": signals, "facts": pseudo.scrub_any(dict(facts))}, pseudo
