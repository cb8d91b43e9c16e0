"""The same counts, two intervals: fixed-horizon (read once) and anytime-valid (read any day)."""

from copilot.measure.evidence.sequential import anytime_lift
from copilot.measure.experiments import arm, lift

treated, holdout = arm(460, 3_800), arm(380, 3_800)
fixed = lift(treated, holdout)
seq = anytime_lift(treated, holdout, horizon=7_670)  # the plan's total: `copilot experiment plan`
print(f"lift {fixed.difference * 100:+.2f} pts")
print(f"fixed-horizon (Newcombe) [{fixed.low * 100:+.2f}, {fixed.high * 100:+.2f}]")
print(f"anytime-valid            [{seq.low * 100:+.2f}, {seq.high * 100:+.2f}]")
