"""Evals: suites of scenarios per agent type, run through the real stack (`python -m evals`)."""
