"""Continuous evidence: sample-ratio checks, peeking-safe intervals and CUPED over any comparison."""
