"""Writing a workflow graph as DOT, SVG or PNG.

DOT is produced in Python; SVG and PNG need Graphviz's `dot` program, and its
absence is a clear error rather than a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import graphviz

from mnlang.graph.dot import workflow_graph
from mnlang.graph.overlay import RunOverlay
from mnlang.ir.model import IRProgram

GraphFormat = Literal["dot", "svg", "png"]
FORMATS: tuple[GraphFormat, ...] = ("dot", "svg", "png")


class GraphError(Exception):
    """A graph that cannot be produced; `help` says what to do."""

    def __init__(self, message: str, help: str) -> None:
        super().__init__(message)
        self.message = message
        self.help = help


def format_of(path: Path) -> GraphFormat:
    """The output format named by a file's suffix."""
    suffix = path.suffix.lower().lstrip(".")
    for fmt in FORMATS:
        if suffix == fmt or (fmt == "dot" and suffix == "gv"):
            return fmt
    raise GraphError(
        f"cannot tell the graph format from `{path.name}`",
        help="name the output `.svg`, `.png` or `.dot`",
    )


def pick_workflow(program: IRProgram, workflow: str | None) -> str:
    """The workflow to draw: the one named, or the root module's only workflow."""
    if workflow is not None:
        if workflow not in program.workflows:
            known = ", ".join(f"`{w}`" for w in program.workflows) or "none"
            raise GraphError(f"no workflow `{workflow}`", help=f"workflows: {known}")
        return workflow
    own = [name for name in program.workflows if "." not in name]
    if len(own) == 1:
        return own[0]
    if not own:
        raise GraphError(f"`{program.source.file}` declares no workflow", help="declare one")
    listed = ", ".join(f"`{w}`" for w in own)
    raise GraphError(
        f"`{program.source.file}` declares {len(own)} workflows: {listed}",
        help="pick one with `--workflow NAME`",
    )


def render(
    program: IRProgram, workflow: str, fmt: GraphFormat, overlay: RunOverlay | None = None
) -> bytes:
    """The graph of a workflow in a format; SVG and PNG run Graphviz's `dot`."""
    graph = workflow_graph(program, workflow, overlay)
    if fmt == "dot":
        return str(graph.source).encode("utf-8")
    try:
        data: bytes = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphError(
            f"drawing {fmt.upper()} needs Graphviz's `dot` program, which is not installed",
            help="install it (`apt-get install graphviz`, `brew install graphviz`), "
            "or write DOT with `-o graph.dot`",
        ) from None
    except graphviz.CalledProcessError as e:
        raise GraphError(
            f"Graphviz failed: {e.stderr.decode('utf-8', 'replace').strip()[:200]}",
            help="report this with the `.dot` output (`-o graph.dot`)",
        ) from None
    return data
