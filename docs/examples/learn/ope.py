"""Off-policy evaluation of a fixed target on decisions logged uniformly (runs in the docs test)."""

import numpy as np

from copilot.learn import Logged, evaluate

rng = np.random.default_rng(0)
n, k = 5000, 3
true_rate = np.array([0.2, 0.5, 0.3])  # candidate 1 is best; the logger did not know
logged = rng.integers(0, k, size=n)  # uniform logging: every candidate at 1/3
reward = (rng.random(n) < true_rate[logged]).astype(float)
target = (logged == 1).astype(float)  # the target always picks candidate 1

data = Logged(propensity=np.full(n, 1 / k), reward=reward, target=target,
              q_logged=np.full(n, reward.mean()), q_target=np.full(n, reward.mean()))
for name, e in evaluate(data).items():
    print(f"{name:5} {e.value:.3f} [{e.low:.3f}, {e.high:.3f}] ess={e.ess:.0f} max_w={e.max_weight:.1f}")
assert all(e.low <= 0.5 <= e.high for e in evaluate(data).values())
