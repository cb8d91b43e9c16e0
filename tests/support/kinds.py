"""A small catalog and policy the gate tests use (and decider processes import)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from approvals import ActionKind, Catalog, OnExpiry, Policy, Risk


class Note(BaseModel):
    account: str
    text: str = Field(max_length=2000)


class Email(BaseModel):
    to: str
    subject: str
    body: str = Field(max_length=5000)
    attachments: int = Field(default=0, ge=0)


class Credit(BaseModel):
    account: str
    amount: int = Field(gt=0, le=100_000)


class Training(BaseModel):
    account: str
    topic: str


def email_risk(e: Email) -> Risk:
    return Risk.HIGH if e.attachments else Risk.MEDIUM


def credit_risk(c: Credit) -> Risk:
    return Risk.LOW if c.amount < 100 else Risk.MEDIUM if c.amount < 500 else Risk.HIGH


CATALOG = Catalog(
    [
        ActionKind("post_note", Note, lambda n: Risk.LOW),
        ActionKind(
            "email_customer",
            Email,
            email_risk,
            reaches_customer=True,
            expires_after=timedelta(hours=24),
        ),
        ActionKind(
            "trial_credit",
            Credit,
            credit_risk,
            reaches_customer=True,
            on_expiry=OnExpiry.ESCALATE,
            escalate_to="admin",
            expires_after=timedelta(hours=4),
        ),
        ActionKind(
            "trial_training",
            Training,
            lambda t: Risk.LOW,
            on_expiry=OnExpiry.AUTO_APPROVE_LOW,
            expires_after=timedelta(hours=1),
        ),
    ]
)

POLICY = Policy.from_yaml(
    """
version: test@1
rules:
  - id: shadow-auto-low
    shadow: true
    when: {risk_at_most: low}
    then: {action: auto_approve, allow_customer: true}
  - id: low-internal
    when: {risk_at_most: low, reaches_customer: false}
    then: {action: auto_approve}
  - id: low-anything
    when: {risk_at_most: low}
    then: {action: auto_approve}
  - id: big-credit
    when: {kind: trial_credit, payload: [{field: amount, op: ge, value: 500}]}
    then: {action: require, n: 2, role: reviewer}
  - id: high
    when: {risk_at_least: high}
    then: {action: require, n: 2, role: reviewer}
"""
)
