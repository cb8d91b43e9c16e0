"""The learning wing's declarations (`COPILOT_LEARN_PATH`, YAML), validated at start-up.

```yaml
surfaces:
  onboarding.next_step:
    candidates:
      - {id: checklist, priority: 2, description: "a checklist of setup steps"}
      - {id: tour, priority: 1, description: "a guided product tour"}
rewards: {window: 604800, placement: {accept: 0.5, complete: 1.0, dismiss: -1.0}}
training: {floor: 0.02, min_samples: 30}
evidence: {estimator: dr, margin: 0.01}
guardrails: [{metric: complaint, max_increase: 0.01}]
holdout_share: 0.05
lookback_days: 30
```

Descriptions are declared, non-personal text about a candidate (never about a subject):
the only text the wing embeds.
"""

from __future__ import annotations

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from copilot.errors import ConfigError
from copilot.learn.evidence import EvidenceConfig
from copilot.learn.rewards import RewardSpec
from copilot.learn.train import TrainConfig
from copilot.measure.guardrails import Guardrail
from copilot.ranking import Candidate


class DeclaredCandidate(BaseModel):
    """A candidate as declared: its rules ranking and an optional description to embed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    priority: int = 0
    description: str | None = Field(default=None, max_length=2000)


class Surface(BaseModel):
    """One ranked surface and its candidates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    candidates: list[DeclaredCandidate] = Field(default_factory=list)

    def ranked(self) -> list[Candidate]:
        """The candidates as the policies see them (declaration order is the tie-break)."""
        return [Candidate(id=c.id, priority=c.priority, order=i)
                for i, c in enumerate(self.candidates)]  # fmt: skip


class LearnConfig(BaseModel):
    """Everything the learning loop is told."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    surfaces: dict[str, Surface] = Field(default_factory=dict)
    rewards: RewardSpec = RewardSpec()
    training: TrainConfig = TrainConfig()
    evidence: EvidenceConfig = EvidenceConfig()
    guardrails: list[Guardrail] = Field(default_factory=list)
    holdout_share: float = Field(default=0.05, ge=0, le=0.5)
    lookback_days: float = Field(default=30, gt=0)

    @classmethod
    def from_yaml(cls, text: str, *, setting: str = "COPILOT_LEARN_PATH") -> LearnConfig:
        """Parse and validate, or ConfigError naming the setting and the field."""
        try:
            return cls.model_validate(yaml.safe_load(text) or {})
        except (yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"{setting}: {exc}") from exc


__all__ = ["DeclaredCandidate", "LearnConfig", "Surface"]
