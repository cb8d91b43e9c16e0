"""Where placements are declared: in code (`register`, a module's top-level Placements) or YAML.

YAML form (`COPILOT_PLACEMENTS_PATH`):

    caps: {per_day: 5}
    priority_classes:
      - {name: security, rank: 100, bypass_caps: true}
    placements:
      - name: onboarding.next_step
        signals: [setup_steps_done, {name: plan, freshness: P30D}]
        holdout: 0.1
        thin_default: take_the_tour
        candidates:
          - id: connect_data
            when: ["setup_steps_done < 1"]
            content: {title: Connect your data}

Start-up (`check`) refuses a placement that reads a signal not declared for it, a
candidate of an undeclared priority class, and a policy no one registered.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType

import yaml
from pydantic import ValidationError

from copilot.governance.signals import SignalRegistry
from copilot.placements.errors import PlacementDefinitionError, UnknownPlacementError
from copilot.placements.model import DEFAULT_CLASSES, Caps, Placement, PriorityClass
from copilot.ranking import RankingPolicy, RulesPolicy


class PolicyRegistry:
    """Ranking policies by name: `rules` built in; learned policies register beside it."""

    def __init__(self, policies: Iterable[RankingPolicy] = ()) -> None:
        self._by_name: dict[str, RankingPolicy] = {}
        for policy in (RulesPolicy(), *policies):
            self.register(policy)

    def register(self, policy: RankingPolicy) -> RankingPolicy:
        """Make `policy` resolvable by its name (a later one of the same name replaces it)."""
        if not isinstance(policy, RankingPolicy):
            raise PlacementDefinitionError(
                f"{policy!r} is not a RankingPolicy (name, version, choose)"
            )
        self._by_name[policy.name] = policy
        return policy

    def get(self, name: str) -> RankingPolicy:
        """The policy of that name."""
        found = self._by_name.get(name)
        if found is None:
            raise PlacementDefinitionError(
                f"no ranking policy {name!r} is registered (registered: {sorted(self._by_name)}); "
                "register it with PlacementRegistry.policies.register(policy)", policy=name
            )  # fmt: skip
        return found

    def names(self) -> list[str]:
        """Registered names."""
        return sorted(self._by_name)


class PlacementRegistry:
    """The declared placements, priority classes and caps of one deployment."""

    def __init__(
        self,
        placements: Iterable[Placement] = (),
        *,
        caps: Caps | None = None,
        classes: Iterable[PriorityClass] = (),
    ) -> None:
        self._placements: dict[str, Placement] = {}
        self.classes: dict[str, PriorityClass] = {c.name: c for c in DEFAULT_CLASSES}
        self.caps = caps or Caps()
        self.policies = PolicyRegistry()
        for cls in classes:
            self.classes[cls.name] = cls
        for p in placements:
            self.register(p)

    def register(self, placement: Placement) -> Placement:
        """Declare a placement (a different declaration under the same name is an error)."""
        if self._placements.get(placement.name, placement) != placement:
            raise PlacementDefinitionError(
                f"placement {placement.name!r} is declared twice, differently", placement=placement.name
            )  # fmt: skip
        self._placements[placement.name] = placement
        return placement

    def merge(self, other: PlacementRegistry) -> PlacementRegistry:
        """Take `other`'s placements and classes; its caps replace these if it set any."""
        for p in other:
            self.register(p)
        self.classes.update(other.classes)
        if other.caps != Caps():
            self.caps = other.caps
        return self

    def register_module(self, module: ModuleType | str) -> list[Placement]:
        """Register a module's top-level Placements and PlacementRegistries (a dotted name works)."""
        mod = importlib.import_module(module) if isinstance(module, str) else module
        found: list[Placement] = []
        for value in vars(mod).values():
            if isinstance(value, Placement):
                found.append(self.register(value))
            elif isinstance(value, PlacementRegistry):
                self.merge(value)
                found += list(value)
        return found

    @classmethod
    def from_yaml(cls, text: str) -> PlacementRegistry:
        """Load the YAML form; every problem is named."""
        doc = yaml.safe_load(text) or {}
        if not isinstance(doc, dict):
            raise PlacementDefinitionError("placement declarations must be a mapping")
        try:
            return cls(
                (Placement.model_validate(p) for p in doc.get("placements", [])),
                caps=Caps.model_validate(doc.get("caps", {})),
                classes=[PriorityClass.model_validate(c) for c in doc.get("priority_classes", [])],
            )
        except ValidationError as exc:
            raise PlacementDefinitionError(f"placement declarations are invalid: {exc}") from None

    def get(self, name: str) -> Placement:
        """The placement of that name, or UnknownPlacementError (`placement.unknown`)."""
        found = self._placements.get(name)
        if found is None:
            raise UnknownPlacementError(
                f"no placement {name!r} is declared (declared: {', '.join(sorted(self._placements)) or 'none'})",
                placement=name,
            )  # fmt: skip
        return found

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._placements[n] for n in sorted(self._placements))

    def __len__(self) -> int:
        return len(self._placements)

    def priority(self, name: str) -> PriorityClass:
        """A declared priority class."""
        return self.classes[name]

    def check(self, signals: SignalRegistry) -> None:
        """Start-up validation: signals declared for each placement, classes and policies exist."""
        signals.check_workflows({p.name: p.signal_names for p in self})
        for p in self:
            for name in p.signal_names:
                spec = signals.get(name)
                if spec is not None and (spec.type == "text" or spec.sensitivity == "special"):
                    raise PlacementDefinitionError(
                        f"placement {p.name!r} reads {name!r} ({spec.type}, {spec.sensitivity}): "
                        "placements read short, non-special signals only (their values are logged "
                        "as the policy's features)", placement=p.name, signal=name,
                    )  # fmt: skip
            for c in p.candidates:
                if c.priority not in self.classes:
                    raise PlacementDefinitionError(
                        f"placement {p.name!r} candidate {c.id!r} has priority class {c.priority!r}, "
                        f"which is not declared (declared: {sorted(self.classes)})",
                        placement=p.name, candidate=c.id,
                    )  # fmt: skip
            self.policies.get(p.policy)
            if p.thin_default is not None:
                default = p.candidate(p.thin_default)
                if default is not None and default.when:
                    raise PlacementDefinitionError(
                        f"placement {p.name!r}: thin_default {p.thin_default!r} has conditions; "
                        "the thin-context default must be safe without signals", placement=p.name
                    )  # fmt: skip


__all__ = ["PlacementRegistry", "PolicyRegistry"]
