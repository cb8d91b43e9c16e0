"""The signals the built-in workflows read, declared once: purpose, type, sensitivity, retention."""

from __future__ import annotations

from datetime import timedelta

from copilot import Sensitivity, SignalNeed, SignalRegistry, SignalSpec

HEALTH = "account_health"
ACTIONS = "next_actions"
TONE = "tone_draft"
SAVE = "save_plan"


def _spec(
    name: str,
    description: str,
    type_: str,
    *,
    workflows: tuple[str, ...],
    purpose: str,
    sensitivity: Sensitivity = Sensitivity.INTERNAL,
    days: int = 180,
    source: str = "product analytics",
    max_length: int = 2000,
) -> SignalSpec:
    return SignalSpec.model_validate(
        {
            "name": name,
            "description": description,
            "purpose": purpose,
            "type": type_,
            "sensitivity": sensitivity,
            "retention": timedelta(days=days),
            "source": source,
            "workflows": workflows,
            "max_length": max_length,
        }
    )


_ALL = (HEALTH, ACTIONS, SAVE)
_HEALTH_PURPOSE = "score account health and suggest what to do next"

SIGNALS = SignalRegistry(
    [
        _spec("account_name", "The customer company's name", "string", workflows=(*_ALL, TONE),
              purpose="address the account in notes and drafts", source="CRM", days=730),
        _spec("plan_tier", "Subscription tier: starter, growth or enterprise", "string",
              workflows=(SAVE, TONE), purpose="segment results and size actions", source="billing",
              days=730),
        _spec("usage_trend", "Week-over-week change in active usage, percent", "number",
              workflows=_ALL, purpose=_HEALTH_PURPOSE, days=90),
        _spec("active_seats", "Seats used in the last 30 days", "integer", workflows=_ALL,
              purpose=_HEALTH_PURPOSE, days=90),
        _spec("purchased_seats", "Seats on the contract", "integer", workflows=_ALL,
              purpose=_HEALTH_PURPOSE, source="billing", days=730),
        _spec("days_since_login", "Days since any user of the account last signed in", "integer",
              workflows=_ALL, purpose=_HEALTH_PURPOSE, days=90),
        _spec("open_tickets", "Open support tickets", "integer", workflows=_ALL,
              purpose=_HEALTH_PURPOSE, source="support desk", days=90),
        _spec("ticket_severity", "Highest severity among open tickets: none, low, medium, high",
              "string", workflows=_ALL, purpose=_HEALTH_PURPOSE, source="support desk", days=90),
        _spec("nps", "Latest NPS answer of the account's contact, 0-10", "integer",
              workflows=_ALL, purpose=_HEALTH_PURPOSE, source="surveys", days=365),
        _spec("csat", "Average CSAT of recent support conversations, 1-5", "number",
              workflows=(HEALTH, ACTIONS), purpose=_HEALTH_PURPOSE, source="support desk", days=180),
        _spec("billing_status", "Billing state: current, overdue or failed", "string",
              workflows=_ALL, purpose=_HEALTH_PURPOSE, source="billing", days=90),
        _spec("overdue_amount", "Amount overdue, in the account's currency", "number",
              workflows=(ACTIONS,), purpose="size billing reminders", source="billing", days=90),
        _spec("renewal_date", "Contract renewal date", "date", workflows=_ALL,
              purpose=_HEALTH_PURPOSE, source="billing", days=730),
        _spec("onboarding_complete", "Whether onboarding milestones are done", "boolean",
              workflows=(ACTIONS,), purpose="suggest onboarding help", days=365),
        _spec("features_adopted", "Share of key features in use, 0-1", "number",
              workflows=(ACTIONS,),
              purpose="suggest training", days=90),
        _spec("contact_name", "Name of the account's main contact", "string",
              workflows=(ACTIONS, TONE, SAVE), purpose="address drafts and calls to the contact",
              sensitivity=Sensitivity.PERSONAL, source="CRM", days=730),
        _spec("contact_email", "Email of the account's main contact", "string",
              workflows=(ACTIONS, TONE, SAVE), purpose="deliver approved messages",
              sensitivity=Sensitivity.PERSONAL, source="CRM", days=730),
        _spec("recent_messages", "The contact's recent messages to us, separated by lines of ---",
              "text", workflows=(TONE, SAVE), purpose="match the customer's tone in drafts",
              sensitivity=Sensitivity.PERSONAL, source="support desk", days=180,
              max_length=20000),
        _spec("last_ticket_text", "Text of the latest support ticket (untrusted customer text)",
              "text", workflows=(HEALTH, SAVE), purpose="ground summaries in the latest issue",
              sensitivity=Sensitivity.PERSONAL, source="support desk", days=180, max_length=8000),
    ]
)  # fmt: skip


def need(
    name: str, weight: float, days: int, *, required: bool = False, conditional: bool = False
) -> SignalNeed:
    """A workflow's use of a signal: its weight in coverage and how many days it stays fresh."""
    return SignalNeed(
        name=name,
        weight=weight,
        freshness=timedelta(days=days),
        required=required,
        conditional=conditional,
    )
