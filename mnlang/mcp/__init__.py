"""MCP (Model Context Protocol) servers as typed tools, and programs served to MCP clients.

- `lock`: the schema lock file (`mcp.lock.json`), shared by the checker and the runtime;
- `generate`: `mnc mcp import`, declarations and lock from a live server;
- `sessions`: the runtime's sessions with the servers (the `mcp` SDK, imported lazily).
"""
