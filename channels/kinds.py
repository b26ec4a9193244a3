"""Imports every channel kind, so each registers itself (channels/registry.py)."""

from channels import amqp, http_api, telegram  # noqa: F401
