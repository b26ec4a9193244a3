"""The LiveKit side of Switchboard: turns a job into a running agent (see DESIGN.md)."""
