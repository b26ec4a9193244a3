"""Operator scripts: seeding agent types (setup_agents.py)."""
