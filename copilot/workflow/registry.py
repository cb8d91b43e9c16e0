"""Where workflows are found: registered explicitly, or through the `copilot.workflows` entry points."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType

from approvals import ActionKind, Catalog
from copilot.errors import UnknownWorkflowError, WorkflowDefinitionError
from copilot.governance.signals import SignalRegistry, SignalSpec
from copilot.measure.outcomes import OutcomeRegistry, OutcomeSpec
from copilot.workflow.definition import Workflow
from copilot.workflow.literals import check_literals
from copilot.workflow.triggers import EventTrigger, Schedule, TriggerRegistry, watched_signals

ENTRY_POINT_GROUP = "copilot.workflows"
# The built-in demo workflows are the entry points copilot's own distribution declares
# (pyproject.toml) into the `workflows` package; COPILOT_BUILTIN_WORKFLOWS=false skips them.
BUILTIN_PACKAGE = "workflows"


class Registry:
    """Workflows by (name, version). Built at the edges; no global registry exists."""

    def __init__(self, workflows: Iterable[Workflow] = ()) -> None:
        self._by_key: dict[tuple[str, str], Workflow] = {}
        self._latest: dict[str, Workflow] = {}
        self.catalog = Catalog()  # the action kinds the registered modules declare
        self.signals = SignalRegistry()  # and the signals they declare
        self.outcomes = OutcomeRegistry()  # and the outcomes they measure
        self.triggers = TriggerRegistry()  # and their schedules and event triggers
        for wf in workflows:
            self.register(wf)

    def register(self, workflow: Workflow) -> Workflow:
        """Add a workflow; registering the same object twice is a no-op."""
        if not workflow.steps:
            raise WorkflowDefinitionError(
                f"workflow {workflow.name!r} has no steps; add one with @step"
            )
        existing = self._by_key.get(workflow.key)
        if existing is not None and existing is not workflow:
            raise WorkflowDefinitionError(
                f"workflow {workflow.name!r} version {workflow.version!r} is registered twice; "
                "bump the version of one of them"
            )
        self._by_key[workflow.key] = workflow
        self._latest[workflow.name] = workflow
        return workflow

    def register_module(self, module: ModuleType | str) -> list[Workflow]:
        """Register a module's top-level Workflows and what is declared beside them (a dotted name works)."""
        mod = importlib.import_module(module) if isinstance(module, str) else module
        for value in vars(mod).values():  # action kinds declared beside the workflows
            if isinstance(value, ActionKind):
                self.catalog.register(value)
            elif isinstance(value, SignalSpec):
                self.signals.register(value)
            elif isinstance(value, SignalRegistry):
                for spec in value.specs():
                    self.signals.register(spec)
            elif isinstance(value, OutcomeSpec):
                self.outcomes.register(value)
            elif isinstance(value, OutcomeRegistry):
                for outcome in value.specs():
                    self.outcomes.register(outcome)
            elif isinstance(value, Schedule | EventTrigger):
                self.triggers.register(value)
            elif isinstance(value, TriggerRegistry):
                for item in value.items():
                    self.triggers.register(item)
            elif isinstance(value, Catalog):
                for name in value.names():
                    self.catalog.register(value.get(name))
        found = [v for v in vars(mod).values() if isinstance(v, Workflow)]
        return [self.register(wf) for wf in found]

    def load_entry_points(
        self, group: str = ENTRY_POINT_GROUP, *, builtins: bool = True
    ) -> list[Workflow]:
        """Register what the installed distributions declare under `group`.

        An entry point may name a Workflow, a module of them, or a callable returning them.
        `builtins=False` skips the built-in demo workflows (and so their action kinds,
        signals, schedule and event trigger, which are declared beside them).
        """
        loaded: list[Workflow] = []
        for ep in entry_points(group=group):
            if not builtins and is_builtin(ep.value):
                continue
            obj = ep.load()
            if isinstance(obj, Workflow):
                loaded.append(self.register(obj))
            elif isinstance(obj, ModuleType):
                loaded += self.register_module(obj)
            elif callable(obj):
                loaded += [self.register(wf) for wf in obj()]
            else:
                raise WorkflowDefinitionError(
                    f"entry point {ep.name!r} in {group!r} is not a Workflow, module or callable"
                )
        return loaded

    def check(self) -> None:
        """Every start-up validation: signals, declared actions, triggers (what a worker runs)."""
        self.check_signals()  # nothing undeclared may reach a workflow
        self.check_actions()  # nor may a workflow propose a kind nobody declared
        self.check_literals()  # nor name, in a step's code, a kind or signal it does not declare
        self.check_triggers()

    def check_literals(self) -> None:
        """Start-up validation: the string literals steps pass to `ctx.propose` and `ctx.value`
        are kinds and signals their workflow declares (see `copilot.workflow.literals`)."""
        for wf in self:
            check_literals(wf)

    def check_signals(self) -> None:
        """Start-up validation: declarations and reads agree.

        A workflow reads the signals of its SignalNeeds (every registered version's: pinned
        runs resume on old ones) and those its schedules and event triggers watch.
        """
        reads: dict[str, set[str]] = {}
        for wf in self:
            reads.setdefault(wf.name, set()).update(n.name for n in wf.signals)
        watched: dict[str, set[str]] = {}
        for item in self.triggers.items():
            if item.workflow in reads:
                watched.setdefault(item.workflow, set()).update(watched_signals(item))
        self.signals.check_workflows(reads, watched)

    def check_actions(self) -> None:
        """Start-up validation: every action kind a workflow declares (`actions=`) is in the catalog.

        Raises WorkflowDefinitionError (`workflow.invalid`) naming the workflow and the kind:
        a workflow that may propose a kind nobody declared would have its proposals refused
        one run at a time, long after the deploy.
        """
        for wf in self:
            missing = [kind for kind in wf.actions if kind not in self.catalog]
            if missing:
                known = ", ".join(self.catalog.names()) or "none"
                raise WorkflowDefinitionError(
                    f"workflow {wf.name!r} version {wf.version!r} declares action kind "
                    f"{missing[0]!r}, which is not in the catalog (catalogued: {known}); declare "
                    "the ActionKind in the workflow's module or fix the name in actions=[...]",
                    workflow=wf.name,
                    kind=missing[0],
                )

    def check_triggers(self) -> None:
        """Start-up validation: schedules and event triggers name workflows and signals that exist."""
        self.triggers.check(self.get, self.signals)

    def get(self, name: str, version: str | None = None) -> Workflow:
        """The workflow `name` at `version` (default: the latest registered)."""
        wf = self._latest.get(name) if version is None else self._by_key.get((name, version))
        if wf is None:
            known = ", ".join(sorted(f"{n}@{v}" for n, v in self._by_key)) or "none"
            what = name if version is None else f"{name}@{version}"
            raise UnknownWorkflowError(
                f"no workflow {what} is registered (registered: {known})",
                workflow=name,
                version=version,
            )
        return wf

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._by_key.values(), key=lambda w: w.key))


def is_builtin(target: str) -> bool:
    """Whether an entry point's target (`module[:attr]`) is one of the built-in workflows."""
    module = target.partition(":")[0].strip()
    return module == BUILTIN_PACKAGE or module.startswith(BUILTIN_PACKAGE + ".")
