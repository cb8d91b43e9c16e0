"""Declaring schedules and event triggers: conditions, periods, YAML, start-up checks with clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from copilot.workflow.registry import Registry
from copilot.workflow.triggers import (
    Condition,
    EventTrigger,
    Schedule,
    Subjects,
    TriggerError,
    TriggerRegistry,
)
from tests.support import triggered


def registry(*items: Schedule | EventTrigger) -> Registry:
    r = Registry([triggered.pulse])
    for spec in triggered.SIGNALS.specs():
        r.signals.register(spec)
    for item in items:
        r.triggers.register(item)
    return r


def test_conditions_parse_compare_and_print() -> None:
    drop = Condition.parse("pulse_usage <= -30")
    assert (drop.signal, drop.op, drop.value) == ("pulse_usage", "<=", -30)
    assert drop.fires(-30, None) and not drop.fires(-29.9, None) and not drop.fires("x", None)
    failed = Condition.parse('pulse_billing becomes "failed"')
    assert failed.fires("failed", None) and failed.fires("failed", "current")
    assert not failed.fires("failed", "failed")
    assert str(failed) == 'pulse_billing becomes "failed"'


@pytest.mark.parametrize(
    ("text", "says"),
    [("pulse_usage <=", "signal op value"), ("pulse_usage ~ 3", "signal op value"),
     ("pulse_billing == failed", "quote strings")],
)  # fmt: skip
def test_a_malformed_condition_is_refused_with_the_fix(text: str, says: str) -> None:
    with pytest.raises(TriggerError) as exc:
        Condition.parse(text)
    assert exc.value.code == "trigger.invalid" and says in exc.value.message


def test_periods_start_on_monday_and_keys_name_the_period() -> None:
    weekly = Schedule(name="w", workflow="pulse", every=timedelta(days=7),
                      subjects=Subjects(having=("pulse_usage",)))  # fmt: skip
    thursday = datetime(2026, 11, 5, 15, 30, tzinfo=UTC).timestamp()
    start = weekly.period_start(thursday)
    assert datetime.fromtimestamp(start, UTC) == datetime(2026, 11, 2, tzinfo=UTC)
    assert (
        weekly.period_start(start) == start and weekly.period_start(start - 1) == start - 7 * 86400
    )
    assert weekly.key(start, "acct-1") == "schedule:w:2026-11-02T00:00:00Z:acct-1"
    long = weekly.key(start, "x" * 300)
    assert len(long) <= 200 and long == weekly.key(start, "x" * 300)


@pytest.mark.parametrize(
    ("fields", "says"),
    [({"jitter": timedelta(days=7)}, "jitter"), ({"every": timedelta(0)}, "every"),
     ({"subjects": {}}, "having"), ({"subjects": {"where": ['pulse_tier becomes "x"']}}, "becomes")],
)  # fmt: skip
def test_a_wrong_schedule_is_refused(fields: dict[str, object], says: str) -> None:
    doc = {
        "name": "s",
        "workflow": "pulse",
        "every": "P1D",
        "subjects": {"having": ["pulse_usage"]},
    }
    with pytest.raises(ValueError, match=says):
        Schedule.model_validate({**doc, **fields})


def test_start_up_checks_name_every_problem() -> None:
    bad = [
        EventTrigger(name="a", workflow="nope", when="pulse_usage < 1", debounce=timedelta(hours=1)),
        EventTrigger(name="b", workflow="pulse", when="undeclared_x == 1", debounce=timedelta(hours=1)),
        EventTrigger(name="c", workflow="pulse", when='pulse_usage == "high"', debounce=timedelta(hours=1)),
        EventTrigger(name="d", workflow="pulse", when='pulse_tier > "a"', debounce=timedelta(hours=1)),
        Schedule(name="e", workflow="pulse", every=timedelta(days=1), subjects=Subjects(having=("nps",))),
        EventTrigger(name="f", workflow="pulse", when="pulse_usage < 1", debounce=timedelta(hours=1),
                     inputs={"subject_id": 5}),
    ]  # fmt: skip
    with pytest.raises(TriggerError) as exc:
        registry(*bad).check_triggers()
    message = exc.value.message
    for fragment in ("a: no workflow nope", "b: signal 'undeclared_x' is not declared",
                     "c: pulse_usage == \"high\" compares number", "d: pulse_tier > \"a\" orders a string",
                     "e: signal 'nps' is not declared", "f: inputs do not fit Account"):  # fmt: skip
        assert fragment in message


def test_yaml_declarations_load_and_bad_ones_are_refused() -> None:
    loaded = TriggerRegistry.from_yaml(
        """
schedules:
  - name: daily
    workflow: pulse
    every: P1D
    jitter: PT2H
    subjects: {having: [pulse_usage], where: ['pulse_tier == "enterprise"'], seen_within: P30D}
events:
  - name: failed
    workflow: pulse
    when: 'pulse_billing becomes "failed"'
    debounce: PT6H
"""
    )
    [daily], [failed] = loaded.schedules(), loaded.events()
    assert (
        daily.jitter == timedelta(hours=2)
        and str(daily.subjects.where[0]) == 'pulse_tier == "enterprise"'
    )
    assert failed.debounce == timedelta(hours=6) and failed.signals == {"pulse_billing"}
    registry(*loaded.items()).check_triggers()
    for text in ("triggers: []", "events: [{name: x, workflow: pulse, when: [], debounce: PT1H}]",
                 "events: [{name: x, workflow: pulse, when: 'pulse_usage < 1'}]", "events: [oops"):  # fmt: skip
        with pytest.raises(TriggerError):
            TriggerRegistry.from_yaml(text)


def test_a_name_declared_twice_differently_is_refused() -> None:
    one = EventTrigger(
        name="x", workflow="pulse", when="pulse_usage < 1", debounce=timedelta(hours=1)
    )
    two = one.model_copy(update={"debounce": timedelta(hours=2)})
    r = TriggerRegistry([one, one])
    with pytest.raises(TriggerError, match="declared twice"):
        r.register(two)


def test_the_built_in_workflows_declare_a_weekly_schedule_and_an_at_risk_trigger() -> None:
    r = Registry()
    r.load_entry_points()
    r.check_signals()
    r.check_triggers()
    [weekly] = r.triggers.schedules()
    [risk] = r.triggers.events()
    assert (weekly.workflow, weekly.every) == ("account_health", timedelta(days=7))
    assert risk.workflow == "next_actions"
    assert [str(c) for c in risk.when] == [
        'billing_status becomes "failed"', "usage_trend <= -30", 'ticket_severity becomes "high"'
    ]  # fmt: skip
