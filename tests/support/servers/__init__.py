"""MCP servers and helpers the integration tests run (in-process, stdio children, uvicorn)."""
