"""mnlang: a typed language, compiler and durable runtime for AI agent workflows."""

__version__ = "0.1.0"
