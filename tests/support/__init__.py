"""Helpers shared by the tests: HTTP helpers, OTLP receivers, MCP servers and their harness."""
