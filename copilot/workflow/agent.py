"""Agentic steps: a tool-calling loop whose side effects are proposals, never actions.

A workflow step annotated `-> Model | Again[Model]` calls `run_agent(...)` and returns what it
returns. The loop is durable because every unit of it is one committed round:

    round   what it does                                       commits
    model   ask the model for its next turn (tools bound)      the turn (AI message)
    tools   run read-only tools, propose side-effecting ones   the tool results + proposals
    decide  (after the gate settles) feed decisions back       the tool results

A side-effecting tool call becomes a proposal with a validated payload: the run waits
for the gate, and the model's next turn sees what became of it (approved and executed,
rejected with the reason, edited: the payload that was approved). A crash repeats only
the round that had not committed. Budgets (tool calls, model calls, tokens, seconds) end
the step gracefully with a reason code (`budget.tool_calls`, ...). With no model, or
below `partial`, the step runs the workflow's rules plan instead, flagged
`agent_rules_plan`. What reaches the model is minimized like `StepContext.ask`: declared
signals only, personal values as tokens (restored in tool arguments).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from copilot.errors import CopilotError
from copilot.governance.minimize import LEFTOVER, Pseudonymizer
from copilot.llm import SYSTEM_RULES, fault_code
from copilot.workflow.context import StepContext
from copilot.workflow.definition import Again
from copilot.workflow.degradation import Level

Plan = list[tuple[str, dict[str, Any], str]]  # (kind, payload, why)


@dataclass(frozen=True)
class Tool:
    """A tool the agent may call: read-only (`read`), or side-effecting (`proposes` a kind)."""

    name: str
    description: str
    args: type[BaseModel]
    read: Callable[[StepContext, Any], Any] | None = None
    proposes: str | None = None
    payload: Callable[[StepContext, Any], dict[str, Any]] | None = None

    def schema(self) -> dict[str, Any]:
        """The OpenAI tool declaration."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": self.args.model_json_schema()}}  # fmt: skip


class Budget(BaseModel):
    """Limits per agentic step."""

    max_tool_calls: int = Field(default=8, ge=0)
    max_model_calls: int = Field(default=6, ge=1)
    max_tokens: int = Field(default=30_000, ge=1)
    max_seconds: float = Field(default=300.0, gt=0)


class AgentState(BaseModel):
    """What a committed round stores (the conversation holds tokens, the mapping is personal)."""

    messages: list[dict[str, Any]] = []
    tokens: dict[str, str] = {}
    pending: list[dict[str, Any]] = []  # tool calls of the last turn not yet answered
    awaiting: dict[str, str] = {}  # tool call id -> action id proposed for it
    model_calls: int = 0
    tool_calls: int = 0
    tokens_used: int = 0
    started_at: float = 0.0
    active_seconds: float = 0.0  # time spent in rounds; waiting for a person does not count
    model: str | None = None
    prompt_version: str | None = None
    rules: bool = False


class ToolUse(BaseModel):
    """One tool call the agent made, and what became of it."""

    tool: str
    kind: str | None = None
    status: str
    reason: str | None = None


class AgentOutcome(BaseModel):
    """How an agentic step ended."""

    method: Literal["model", "rules"]
    stop: str
    answer: str | None = None
    model_calls: int = 0
    tool_calls: int = 0
    uses: list[ToolUse] = []


def run_agent(
    ctx: StepContext,
    *,
    tools: Sequence[Tool],
    instructions: str,
    signals: Sequence[str],
    facts: dict[str, Any] | None = None,
    budget: Budget | None = None,
    prompt_version: str,
    rules_plan: Callable[[StepContext], Plan],
) -> AgentOutcome | Again[Any]:
    """One round of the loop (see the module docstring); return its result from the step."""
    state = AgentState.model_validate(ctx.progress) if ctx.progress else None
    _check_tools(ctx, tools)
    if state is None and (not ctx.model.available or ctx.level not in (Level.FULL, Level.PARTIAL)):
        return _rules_round(ctx, rules_plan)
    if state is not None and state.rules:
        return _rules_outcome(ctx, state)
    if state is None:
        state = _start(ctx, instructions, signals, facts or {})
    limits = budget or Budget()
    by_name = {t.name: t for t in tools}
    pseudo = Pseudonymizer.from_mapping(state.tokens)
    ctx.model_name, ctx.prompt_version = state.model, state.prompt_version  # this round's record
    began = time.monotonic()
    result: AgentOutcome | Again[Any]
    # Opted out mid-conversation: nothing more reaches the model.
    if ctx.consent_refusal() is not None:
        result = _finish(ctx, state, "consent_withdrawn")
    elif state.awaiting:
        result = Again(_decided(ctx, state, pseudo))
    elif state.pending:
        result = _tools_round(ctx, state, by_name, pseudo, limits)
    elif (stop := _over_budget(state, limits)) is not None:
        result = _finish(ctx, state, stop)
    else:
        result = _model_round(ctx, state, tools, pseudo, prompt_version)
    state.active_seconds += time.monotonic() - began
    return result


def _start(
    ctx: StepContext, instructions: str, signals: Sequence[str], facts: dict[str, Any]
) -> AgentState:
    data, pseudo = ctx.minimized(signals, facts)
    system = (
        f"{SYSTEM_RULES}\n\n{pseudo.scrub(instructions)}\n\nCall tools to gather facts and to "
        "propose actions; every action you propose is reviewed before anything happens. When "
        "you are done, reply with a short plain-text summary of the plan."
    )
    human = "<data>\n" + json.dumps(data, sort_keys=True, default=str) + "\n</data>"
    return AgentState(
        messages=[{"role": "system", "content": system}, {"role": "user", "content": human}],
        tokens=pseudo.mapping(),
        started_at=time.time(),
    )


def _model_round(
    ctx: StepContext, state: AgentState, tools: Sequence[Tool], pseudo: Pseudonymizer, version: str
) -> AgentOutcome | Again[Any]:
    from langchain_core.messages import convert_to_messages

    assert ctx.model.chat is not None  # run_agent takes the rules path without a model
    chat = ctx.model.chat.bind_tools([t.schema() for t in tools])
    state.model, state.prompt_version = ctx.model.name, version
    ctx.model_name, ctx.prompt_version = state.model, version
    try:
        reply = chat.invoke(convert_to_messages(state.messages))
    except Exception as exc:
        code = fault_code(exc)
        ctx.degrade(Level.PARTIAL, code)
        return _finish(ctx, state, code)
    state.model_calls += 1
    usage = getattr(reply, "usage_metadata", None) or {}
    state.tokens_used += int(usage.get("total_tokens", 0) or 0)
    for k in ("input_tokens", "output_tokens", "total_tokens"):
        ctx.usage[k] = ctx.usage.get(k, 0) + int(usage.get(k, 0) or 0)
    # Arguments stay text until a tool validates them: a model's NaN or 2**60 must not
    # break the round's canonical form.
    calls = [{"id": c["id"], "name": c["name"], "arguments": json.dumps(c["args"], default=str)}
             for c in reply.tool_calls]  # fmt: skip
    state.messages.append({"role": "assistant", "content": reply.content or "", "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"],
         "arguments": c["arguments"]}} for c in calls]} if calls
        else {"role": "assistant", "content": reply.content or ""})  # fmt: skip
    if not calls:
        answer = pseudo.restore(reply.content if isinstance(reply.content, str) else "")
        return _finish(ctx, state, "final", answer=answer)
    state.pending = calls
    return Again(state)


def _tools_round(
    ctx: StepContext,
    state: AgentState,
    by_name: dict[str, Tool],
    pseudo: Pseudonymizer,
    limits: Budget,
) -> AgentOutcome | Again[Any]:
    for call in state.pending:
        if state.tool_calls >= limits.max_tool_calls:
            state.pending = []
            return _finish(ctx, state, "budget.tool_calls")
        state.tool_calls += 1
        result = _call(ctx, state, by_name.get(call["name"]), call, pseudo)
        if result is not None:
            _answer(state, call["id"], result, pseudo)
    state.pending = []
    return Again(state)


def _check_tools(ctx: StepContext, tools: Sequence[Tool]) -> None:
    """A tool that proposes a kind its workflow does not declare is the author's error: the run
    fails with `run.action_undeclared` on its first round, instead of the model hearing a tool
    error and the side effect silently never happening."""
    wf = ctx.workflow
    for tool in tools:
        if tool.proposes is not None and tool.proposes not in wf.actions:
            declared = ", ".join(wf.actions) or "none"
            raise CopilotError(
                f"{wf.name}: tool {tool.name!r} proposes {tool.proposes!r}, which the workflow "
                f"does not declare (declared: {declared}); add it to Workflow(actions=[...])",
                code="run.action_undeclared",
                kind=tool.proposes,
            )


def _call(
    ctx: StepContext,
    state: AgentState,
    tool: Tool | None,
    call: dict[str, Any],
    pseudo: Pseudonymizer,
) -> dict[str, Any] | None:
    """Run a read-only tool or propose a side effect; the tool's result (None: awaiting a decision)."""
    if tool is None:
        return {"error": f"no tool named {call['name']!r}; use one of the declared tools"}
    try:
        args = tool.args.model_validate(pseudo.restore(json.loads(call["arguments"])))
    except ValueError as exc:
        if not isinstance(exc, ValidationError):
            return {"error": "arguments are not a JSON object"}
        return {"error": "invalid arguments", "fields": [
            {"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]}  # fmt: skip
    if tool.proposes is None:
        assert tool.read is not None
        return {"result": tool.read(ctx, args)}
    payload = tool.payload(ctx, args) if tool.payload else args.model_dump(mode="json")
    if LEFTOVER.search(json.dumps(payload, ensure_ascii=False)):
        return {"error": "the arguments use a [[token]] that stands for nothing; write it out"}
    try:
        proposed = ctx.propose(
            tool.proposes, payload, confidence=0.6, why=f"The agent called {tool.name}."
        )
    except CopilotError as exc:  # an invalid payload or a restricted action: the model hears why
        return {"error": exc.code, "message": str(exc)}
    if proposed is None:  # a held-out subject: nothing is proposed
        return {"status": "withheld", "reason": "this subject is in the holdout"}
    state.awaiting[call["id"]] = proposed
    return None


def _answer(state: AgentState, call_id: str, result: Any, pseudo: Pseudonymizer) -> None:
    # Scrub the values, then encode: escaped text would slip past the scrubber.
    content = json.dumps(pseudo.scrub_any(result), sort_keys=True, default=str, ensure_ascii=False)
    state.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
    state.tokens = pseudo.mapping()


def _decided(ctx: StepContext, state: AgentState, pseudo: Pseudonymizer) -> AgentState:
    """Feed the gate's decisions back as the side-effecting calls' results."""
    outcomes = {o["action_id"]: o for o in (ctx.decision or {}).get("approvals", [])}
    for call_id, action_id in state.awaiting.items():
        o = outcomes.get(action_id, {"status": "unknown"})
        _answer(state, call_id, {
            "status": o["status"], "executed": bool(o.get("executed")), "reason": o.get("reason"),
            "approved_payload": o.get("payload")
            if o.get("version", 1) > 1 and o["status"] == "approved" else None}, pseudo)  # fmt: skip
    state.awaiting = {}
    return state


def _over_budget(state: AgentState, limits: Budget) -> str | None:
    if state.model_calls >= limits.max_model_calls:
        return "budget.model_calls"
    if state.tokens_used >= limits.max_tokens:
        return "budget.tokens"
    if state.active_seconds >= limits.max_seconds:
        return "budget.seconds"
    return None


def _uses(ctx: StepContext, state: AgentState) -> list[ToolUse]:
    return [
        ToolUse(tool="propose", kind=o.kind, status=o.status, reason=o.reason)
        for o in ctx.round_outcomes()
    ]


def _finish(
    ctx: StepContext, state: AgentState, stop: str, answer: str | None = None
) -> AgentOutcome:
    return AgentOutcome(method="model", stop=stop, answer=answer, model_calls=state.model_calls,
                        tool_calls=state.tool_calls, uses=_uses(ctx, state))  # fmt: skip


def _rules_round(ctx: StepContext, rules_plan: Callable[[StepContext], Plan]) -> Again[Any]:
    ctx.degrade(ctx.level, "agent_rules_plan")  # flagged, not lowered
    for kind, payload, why in rules_plan(ctx):
        ctx.propose(kind, payload, confidence=0.5, why=why)
    return Again(AgentState(rules=True, started_at=time.time()))


def _rules_outcome(ctx: StepContext, state: AgentState) -> AgentOutcome:
    return AgentOutcome(method="rules", stop="rules_plan", uses=_uses(ctx, state))
