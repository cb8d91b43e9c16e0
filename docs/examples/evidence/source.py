"""A comparison source of your own: how placement or learned-policy holdouts join the evidence.

Anything that yields `Comparison`s (units with an arm, an exposure time, an outcome and a
covariate, plus the configured allocation) gets the sample-ratio check, both intervals,
CUPED, stop rules and a place in the weekly review.
"""

import math
import random

from sqlalchemy import Connection

from copilot.measure.evidence.comparison import HOLDOUT, TREATED, Comparison, Unit, evaluate_all


class PlacementHoldouts:
    """A stand-in for a placement wing's source (`copilot/placements/` at merge)."""

    def comparisons(
        self, conn: Connection | None, *, tenant: str, outcome: str, until: float
    ) -> list[Comparison]:
        rng = random.Random(7)
        units = []
        for i in range(6_000):
            held = rng.random() < 0.5
            units.append(
                Unit(
                    unit_id=f"u{i}",
                    arm=HOLDOUT if held else TREATED,
                    exposed_at=until - i,
                    covariate=math.nan,
                    outcome=float(rng.random() < (0.10 if held else 0.13)),
                )
            )
        return [
            Comparison(
                kind="placement",
                name="home_banner",
                outcome=outcome,
                allocation={TREATED: 0.5, HOLDOUT: 0.5},
                units=units,
            )
        ]


[e] = evaluate_all(
    PlacementHoldouts().comparisons(None, tenant="acme", outcome="accepted", until=1e9),
    horizon=6_000,
)
print(
    f"{e.kind} {e.name}: SRM p = {e.srm.p_value:.2f}; anytime-valid "
    f"[{e.anytime.low * 100:+.2f}, {e.anytime.high * 100:+.2f}] pts"
)
print("trust:", e.trust)
