"""MCP (Model Context Protocol) servers as typed tools, and programs served to MCP clients.

- `lock`: the schema lock file (`mcp.lock.json`), shared by the checker and the runtime;
- `config`: a project's `[mcp.NAME]` tables, where a deployment reaches a locked server;
- `generate`: `mnc mcp import`, declarations and lock from a live server;
- `serve`: `mnc mcp serve`, a program's workflows as an MCP server (stdio, HTTP);
- `sessions`: the runtime's sessions with the servers (the `mcp` SDK, imported lazily).
"""
