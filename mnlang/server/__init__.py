"""`mnc serve`: the HTTP front door of a journal, a versioned JSON API under `/api/v1`
beside the web console (docs/api.md).

The server uses the library (`mnlang.api`'s pieces, the runtime, the stores); nothing
in the library imports it. Its pydantic models (`mnlang.server.models`) are imported
only here, so other commands do not pay for them at start-up.
"""
