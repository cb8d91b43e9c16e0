"""Sample-ratio mismatch: a 20% holdout that came out at 18.9% of 20,000 subjects."""

from copilot.measure.evidence.srm import check_ratio

srm = check_ratio([16_220, 3_780], [0.8, 0.2], arms=["treated", "holdout"])
print(f"chi-square p = {srm.p_value:.2g}, mismatch: {srm.mismatch}")
print(f"sequential log Bayes factor {srm.sequential_log_bf:.1f} (mismatch past {6.9:.1f})")
for cause in srm.causes[:2]:
    print("-", cause)
