"""The weekly review: trends, cohorts, the funnel and pruning evidence, built on beat and stored."""
