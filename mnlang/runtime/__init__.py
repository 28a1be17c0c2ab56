"""The runtime: a journaled interpreter for compiled workflows.

`mnlang.runtime.run` has the entry points (`start_run`, `resume_run`). The runtime reads
only the IR (`mnlang.ir`), the journal store (`mnlang.stores`) and the tools' error API
(`mnlang.errors`); it never imports the parser or the checker. This package module
imports nothing, so the child process of an `isolation: process` tool starts fast.
"""
