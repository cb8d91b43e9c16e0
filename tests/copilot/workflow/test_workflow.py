"""The definition API checks its target when it is declared, with messages that name the fix."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from copilot import StepContext
from copilot.errors import UnknownWorkflowError, WorkflowDefinitionError
from copilot.workflow.definition import Await, SignalNeed, Workflow
from copilot.workflow.registry import Registry
from tests.support import flows


class A(BaseModel):
    subject_id: str


class B(BaseModel):
    x: int


class C(BaseModel):
    y: int


def test_steps_chain_their_types_and_awaits_are_recognised() -> None:
    wf = Workflow("chain", "1", input=A)

    @wf.step
    def one(ctx: StepContext, inp: A) -> B:
        return B(x=1)

    @wf.step
    def two(ctx: StepContext, inp: B) -> Await[C]:
        return Await(C(y=2))

    assert [(s.name, s.input_type, s.output_type, s.awaits) for s in wf.steps] == [
        ("one", A, B, False),
        ("two", B, C, True),
    ]


def test_a_step_taking_the_wrong_model_names_the_fix() -> None:
    wf = Workflow("chain", "1", input=A)

    @wf.step
    def one(ctx: StepContext, inp: A) -> B:
        return B(x=1)

    with pytest.raises(
        WorkflowDefinitionError, match=r"takes C but the step before it \('one'\) returns B"
    ):

        @wf.step
        def two(ctx: StepContext, inp: C) -> C:
            return inp


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def s(ctx, inp, extra): ...", "takes exactly \\(ctx, inp\\)"),
        ("def s(ctx: StepContext, inp: dict) -> B: ...", "annotate 'inp' with the pydantic model"),
        ("def s(ctx: StepContext, inp: A) -> dict: ...", "annotate the return type"),
        ("def s(ctx: StepContext, inp: A): ...", "annotate the return type"),
    ],
)
def test_bad_step_signatures_are_refused_at_import_time(source: str, message: str) -> None:
    namespace: dict[str, object] = {"StepContext": StepContext, "A": A, "B": B}
    exec(source, namespace)  # noqa: S102 - builds a function with the given signature
    wf = Workflow("bad", "1", input=A)
    with pytest.raises(WorkflowDefinitionError, match=message):
        wf.step(namespace["s"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Account Health", "version": "1", "input": A}, "lowercase letters"),
        ({"name": "ok", "version": "", "input": A}, "short token"),
        ({"name": "ok", "version": "1", "input": dict}, "pydantic model class"),
        (
            {
                "name": "ok",
                "version": "1",
                "input": A,
                "signals": [SignalNeed(name="nps"), SignalNeed(name="nps")],
            },
            "declares a signal twice",
        ),
    ],
)
def test_bad_workflow_declarations_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(WorkflowDefinitionError, match=message):
        Workflow(**kwargs)  # type: ignore[arg-type]


def test_the_registry_resolves_versions_and_refuses_ambiguity() -> None:
    r = Registry()
    assert r.register_module(flows) == [
        flows.five_steps,
        flows.pausing,
        flows.summarize,
        flows.failing,
        flows.proposing,
        flows.noting,
        flows.plain,
        flows.plain_paused,
        flows.plain_three,
        flows.plain_batched,
        flows.paused_batched,
    ]
    assert r.catalog.names() == ["email_customer", "post_note", "trial_credit", "trial_training"]
    assert r.get("five_steps") is flows.five_steps
    assert r.get("five_steps", "1") is flows.five_steps
    with pytest.raises(UnknownWorkflowError, match="registered: failing@1, five_steps@1"):
        r.get("five_steps", "9")
    clash = Workflow("five_steps", "1", input=flows.Start)

    @clash.step
    def s(ctx: StepContext, inp: flows.Start) -> flows.Count:
        return flows.Count(subject_id=inp.subject_id, n=1)

    with pytest.raises(WorkflowDefinitionError, match="registered twice"):
        r.register(clash)
    with pytest.raises(WorkflowDefinitionError, match="has no steps"):
        r.register(Workflow("empty", "1", input=A))


def test_workflows_are_discovered_through_the_entry_point_group(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A distribution declaring `copilot.workflows` entry points is found like any installed one."""
    dist = tmp_path / "acme_flows-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-flows\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[copilot.workflows]\nacme = tests.support.flows\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = Registry().load_entry_points()
    assert flows.five_steps in loaded and flows.pausing in loaded


def test_every_declared_action_kind_must_be_in_the_catalog() -> None:
    """Given flows (whose kinds are catalogued) and a workflow declaring a misspelt kind,
    the start-up check refuses with workflow.invalid, naming the workflow and the kind."""
    r = Registry()
    r.register_module(flows)
    r.check_actions()  # every test flow declares catalogued kinds
    typo = Workflow("typo", "1", input=flows.Start, actions=["post_note", "emial_customer"])

    @typo.step
    def s(ctx: StepContext, inp: flows.Start) -> flows.Start:
        return inp

    r.register(typo)
    with pytest.raises(WorkflowDefinitionError, match="'emial_customer'") as info:
        r.check_actions()
    assert info.value.code == "workflow.invalid"
    assert info.value.details == {"workflow": "typo", "kind": "emial_customer"}
    assert "post_note" in str(info.value)  # the message lists what is catalogued


def test_a_runtime_refuses_to_start_with_a_workflow_declaring_an_uncatalogued_kind(
    tmp_path, monkeypatch  # type: ignore[no-untyped-def]
) -> None:
    """Start-up (the Runtime's registry, built-in workflows included) fails naming the kind."""
    from copilot.runtime import Runtime
    from copilot.settings import Settings

    (tmp_path / "acme_typo.py").write_text(
        "from pydantic import BaseModel\n"
        "from copilot import StepContext, Workflow\n"
        "class In(BaseModel):\n"
        "    subject_id: str\n"
        "typo = Workflow('acme_typo', '1', input=In, actions=['wire_money'])\n"
        "@typo.step\n"
        "def s(ctx: StepContext, inp: In) -> In:\n"
        "    return inp\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    runtime = Runtime(Settings(home=tmp_path / "home", workflow_modules="acme_typo"))
    with pytest.raises(WorkflowDefinitionError, match="'wire_money'") as info:
        runtime.registry  # noqa: B018 - built (and checked) on first use
    assert info.value.code == "workflow.invalid"
    assert "acme_typo" in str(info.value)


def test_the_built_in_workflows_declare_only_catalogued_kinds() -> None:
    r = Registry()
    r.load_entry_points()
    r.check_actions()
    assert {wf.name for wf in r} >= {"account_health", "next_actions", "save_plan", "tone_draft"}
