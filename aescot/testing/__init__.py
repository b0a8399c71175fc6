"""Helpers for tests, demos and flow tests (no network, no model hub)."""
