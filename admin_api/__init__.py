"""The admin API: agent configs, routing rules, sessions and tokens over HTTP (see DESIGN.md)."""
