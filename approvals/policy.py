"""Policies: declarative rules from the facts of a proposal to auto-approve, require or deny.

Rules are tried in order; the first that matches decides. Before any rule: an unknown
action kind is denied. After all rules: a person decides (one reviewer). A rule may not
auto-approve an action that reaches a customer unless it says so explicitly
(`allow_customer: true`), so "anything that reaches a customer needs a person" holds by
default. Shadow rules are evaluated and recorded beside the real decision, never applied.

YAML form:

    version: default@1
    rules:
      - id: low-risk-internal
        when: {risk_at_most: low, reaches_customer: false, level_in: [full, partial]}
        then: {action: auto_approve}
      - id: big-credit
        when: {kind: issue_credit, payload: [{field: amount, op: gt, value: 500}]}
        then: {action: require, n: 2, role: reviewer}
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from approvals.kinds import Catalog, Risk


class Facts(BaseModel):
    """What a policy sees of a proposal (never the model's own claims about it)."""

    model_config = ConfigDict(frozen=True)

    workflow: str
    kind: str
    known_kind: bool
    risk: Risk
    confidence: float
    level: str
    reaches_customer: bool
    payload: dict[str, Any]


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
}


class Predicate(BaseModel):
    """A test on one payload field (dotted path)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str
    op: Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "not_in"]
    value: Any

    def holds(self, payload: dict[str, Any]) -> bool:
        """Whether the payload satisfies the predicate (a missing field never does)."""
        found: Any = payload
        for part in self.field.split("."):
            if not isinstance(found, dict) or part not in found:
                return False
            found = found[part]
        try:
            return bool(_OPS[self.op](found, self.value))
        except TypeError:  # comparing a string with a number: the rule does not apply
            return False


class Match(BaseModel):
    """Conditions of a rule; every one given must hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow: str | None = None
    kind: str | None = None
    risk_at_least: Risk | None = None
    risk_at_most: Risk | None = None
    confidence_below: float | None = None
    confidence_at_least: float | None = None
    level_in: list[str] | None = None
    reaches_customer: bool | None = None
    payload: list[Predicate] = Field(default_factory=list)

    def holds(self, f: Facts) -> bool:
        """Whether these facts match."""
        checks = (
            self.workflow is None or self.workflow == f.workflow,
            self.kind is None or self.kind == f.kind,
            self.risk_at_least is None or f.risk.rank >= self.risk_at_least.rank,
            self.risk_at_most is None or f.risk.rank <= self.risk_at_most.rank,
            self.confidence_below is None or f.confidence < self.confidence_below,
            self.confidence_at_least is None or f.confidence >= self.confidence_at_least,
            self.level_in is None or f.level in self.level_in,
            self.reaches_customer is None or self.reaches_customer == f.reaches_customer,
        )
        return all(checks) and all(p.holds(f.payload) for p in self.payload)


class Outcome(BaseModel):
    """What a rule decides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["auto_approve", "require", "deny"]
    n: int = Field(default=1, ge=1, le=10)
    role: str = "reviewer"
    allow_customer: bool = False


class Rule(BaseModel):
    """`when` these facts, `then` this outcome; `shadow` rules only record what they would do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=100)
    when: Match = Match()
    then: Outcome
    shadow: bool = False


class Evaluation(BaseModel):
    """The applied outcome, the rule that gave it, and what shadow rules would have done."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    rule: str
    policy_version: str
    shadow: list[dict[str, Any]] = Field(default_factory=list)


REQUIRE_ONE = Outcome(action="require", n=1, role="reviewer")


class Policy(BaseModel):
    """An ordered list of rules with a version that every decision records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = "default@1"
    rules: list[Rule] = Field(default_factory=list)

    @classmethod
    def default(cls) -> Policy:
        """The policy when none is configured: low-risk internal actions pass, a person decides the rest."""
        return cls(
            version="default@2",
            rules=[
                Rule(
                    id="low-risk-internal",
                    when=Match(risk_at_most=Risk.LOW, reaches_customer=False),
                    then=Outcome(action="auto_approve"),
                )
            ],
        )

    @classmethod
    def from_yaml(cls, text: str) -> Policy:
        """Load the YAML form (see the module docstring)."""
        return cls.model_validate(yaml.safe_load(text) or {})

    def customer_auto_approvals(self, catalog: Catalog) -> list[str]:
        """Each rule that would auto-approve a customer-facing kind of `catalog` without
        `allow_customer: true` (and so would quietly require one reviewer instead), with the fix."""
        customer = [n for n in catalog.names() if catalog.get(n).reaches_customer]
        problems = []
        for rule in self.rules:
            when, then = rule.when, rule.then
            if then.action != "auto_approve" or then.allow_customer or when.reaches_customer is False:
                continue
            hit = [k for k in customer if when.kind is None or when.kind == k]
            if hit:
                problems.append(
                    f"rule {rule.id!r} auto-approves {', '.join(hit)}, which reach a customer, "
                    "but does not say `allow_customer: true`; add that to its `then`, or "
                    "`reaches_customer: false` to its `when` (a person then decides them)"
                )
        return problems

    def evaluate(self, facts: Facts) -> Evaluation:
        """Decide; unknown kinds are denied before any rule runs."""
        if not facts.known_kind:
            return Evaluation(
                outcome=Outcome(action="deny"), rule="unknown_kind", policy_version=self.version
            )
        applied: tuple[Outcome, str] | None = None
        shadow: list[dict[str, Any]] = []
        for rule in self.rules:
            if not rule.when.holds(facts):
                continue
            outcome = rule.then
            if (
                outcome.action == "auto_approve"
                and facts.reaches_customer
                and not outcome.allow_customer
            ):
                # A person decides what reaches a customer; the request names why the rule's
                # auto-approval did not apply (`Policy.customer_auto_approvals` finds such
                # rules at load).
                outcome, rule_id = REQUIRE_ONE, f"{rule.id}+reaches_customer"
            else:
                rule_id = rule.id
            if rule.shadow:
                shadow.append({"rule": rule_id, **outcome.model_dump()})
            elif applied is None:
                applied = (outcome, rule_id)
        outcome, rule_id = applied or (REQUIRE_ONE, "default")
        return Evaluation(outcome=outcome, rule=rule_id, policy_version=self.version, shadow=shadow)


def facts_of(
    catalog: Catalog,
    *,
    workflow: str,
    kind: str,
    payload: dict[str, Any],
    confidence: float,
    level: str,
) -> Facts:
    """The facts of a proposal: its payload validated and its risk scored by its kind.

    Raises InvalidPayloadError for a payload that does not fit a catalogued kind's schema.
    An unknown kind's payload is taken as it is, at high risk (the policy denies it).
    """
    known = kind in catalog
    model = catalog.get(kind).validate(payload) if known else None
    clean = model.model_dump(mode="json") if model is not None else payload
    risk = catalog.get(kind).score(model) if known and model is not None else Risk.HIGH
    return Facts(
        workflow=workflow,
        kind=kind,
        known_kind=known,
        risk=risk,
        confidence=confidence,
        level=level,
        reaches_customer=catalog.get(kind).reaches_customer if known else True,
        payload=clean,
    )


class Hold(BaseModel):
    """A reason every proposal it covers needs a person (`role`: which one), whatever the policy says.

    A guarded rollout that paused a workflow holds its proposals with `rollout_paused`; a
    resume request holds itself for an admin. The rule is recorded as `<rule>+<reason>`.
    """

    model_config = ConfigDict(frozen=True)

    reason: str
    role: str | None = None


def assess(policy: Policy, catalog: Catalog, facts: Facts, hold: Hold | None = None) -> Evaluation:
    """The policy's evaluation, except that a kind that requires a person, or a held proposal,
    is never auto-approved (a deny stays a deny)."""
    evaluation = policy.evaluate(facts)
    if hold is not None and evaluation.outcome.action != "deny":
        was = evaluation.outcome
        role = hold.role or was.role
        if was.action == "auto_approve" or role != was.role:
            n = was.n if was.action == "require" else 1
            evaluation = evaluation.model_copy(update={
                "outcome": Outcome(action="require", n=n, role=role),
                "rule": f"{evaluation.rule}+{hold.reason}"})  # fmt: skip
    if (
        evaluation.outcome.action == "auto_approve"
        and facts.known_kind
        and catalog.get(facts.kind).requires_person
    ):
        evaluation = evaluation.model_copy(
            update={"outcome": REQUIRE_ONE, "rule": f"{evaluation.rule}+requires_person"}
        )
    return evaluation
