"""CUPED: last month's activity (observed before exposure) explains part of this month's."""

import numpy as np

from copilot.measure.evidence.cuped import cuped

rng = np.random.default_rng(1)
before = rng.normal(10, 3, 4_000)  # the covariate, fixed before anyone was exposed
after = 0.6 * before + rng.normal(0, 2.4, 4_000) + np.r_[np.full(2_000, 0.3), np.zeros(2_000)]
r = cuped(after[:2_000], after[2_000:], before[:2_000], before[2_000:], covariate="active_days")
print(f"adjusted {r.difference:+.3f} [{r.low:+.3f}, {r.high:+.3f}]")
print(f"plain    {r.unadjusted_difference:+.3f} ± {1.96 * r.unadjusted_se:.3f}")
print(f"variance reduced by {r.variance_reduction:.0%}")
print(cuped(after[:2_000], after[2_000:]).reason)  # no covariate: the plain difference
