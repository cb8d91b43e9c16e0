"""Typos found at start-up: the names a step's code passes to `ctx.propose` and `ctx.value`.

A kind or signal written as a string literal in a step (`ctx.propose("send_emial", ...)`,
`ctx.value("plna")`) is read from the step's source and checked against the workflow's
`actions=` and `signals=` when the registry is checked, so a typo stops the deploy instead
of failing (or silently reading a default in) one run at a time. Names built at run time
are checked when used (`run.action_undeclared`, `run.undeclared_signal`).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Iterator

from copilot.errors import WorkflowDefinitionError
from copilot.workflow.definition import Step, Workflow


def check_literals(wf: Workflow) -> None:
    """Raise WorkflowDefinitionError for a literal kind or signal the workflow does not declare."""
    declared = {
        "propose": (set(wf.actions), "proposes", "to Workflow(actions=[...])"),
        "value": ({n.name for n in wf.signals}, "reads signal", "as a SignalNeed in Workflow(signals=[...])"),
    }  # fmt: skip
    for step in wf.steps:
        for method, name, line in _literal_calls(step):
            names, verb, fix = declared[method]
            if name not in names:
                raise WorkflowDefinitionError(
                    f"workflow {wf.name!r} step {step.name!r} (line {line}) {verb} {name!r}, "
                    f"which it does not declare (declared: {', '.join(sorted(names)) or 'none'}); "
                    f"fix the name or add it {fix}",
                    workflow=wf.name, step=step.name, name=name,
                )  # fmt: skip


def _literal_calls(step: Step) -> Iterator[tuple[str, str, int]]:
    """(method, literal first argument, line) of each `ctx.propose`/`ctx.value` call in the step."""
    try:
        source = textwrap.dedent(inspect.getsource(step.fn))
        first_line = inspect.getsourcelines(step.fn)[1]
    except (OSError, TypeError):  # no source (built at run time, a frozen app): checked when used
        return
    tree = ast.parse(source)
    params = list(inspect.signature(step.fn).parameters)
    ctx = params[0] if params else "ctx"
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        target = node.func.value
        if not (isinstance(target, ast.Name) and target.id == ctx):
            continue
        if node.func.attr in ("propose", "value") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield node.func.attr, arg.value, first_line + node.lineno - 1
