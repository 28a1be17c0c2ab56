"""Workflow graphs as inline SVG for the console's pages.

Graphviz draws them (`mnlang.graph`); Graphviz escapes every label, so text from the
program or the run cannot become markup. Drawing costs a `dot` process, so the last
drawings are kept by program hash, workflow and overlay: a page polled while nothing
changes draws nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from markupsafe import Markup

from mnlang.graph.overlay import RunOverlay
from mnlang.graph.render import GraphError, render
from mnlang.ir.model import IRProgram

_KEEP = 64


class GraphCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._svgs: OrderedDict[tuple[str, str, str], Markup] = OrderedDict()

    def svg(
        self, program: IRProgram, workflow: str, overlay: RunOverlay | None = None
    ) -> tuple[Markup | None, str | None]:
        """The inline `<svg>` element of a workflow, or why it cannot be drawn."""
        if workflow not in program.workflows:
            return None, f"the program has no workflow `{workflow}`"
        key = (program.hash, workflow, overlay.model_dump_json() if overlay else "")
        with self._lock:
            found = self._svgs.get(key)
            if found is not None:
                self._svgs.move_to_end(key)
                return found, None
        try:
            data = render(program, workflow, "svg", overlay).decode("utf-8")
        except GraphError as e:
            return None, f"{e.message} ({e.help})"
        # Keep only the <svg> element: the XML declaration and doctype cannot sit in HTML.
        svg = Markup(data[data.index("<svg") :])
        with self._lock:
            self._svgs[key] = svg
            while len(self._svgs) > _KEEP:
                self._svgs.popitem(last=False)
        return svg, None
