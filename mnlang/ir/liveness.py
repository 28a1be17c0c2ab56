"""Live variables: which variables may be read at or after each state.

Computed backwards over a flow graph whose edges carry the variables the
source state assigns on that edge (a call's target, a loop's variable on the
edge into its body, a catch's variable on the edge into its handler).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Edge = tuple[str, frozenset[str]]


def live_in(
    order: Sequence[str], uses: Mapping[str, set[str]], edges: Mapping[str, list[Edge]]
) -> dict[str, set[str]]:
    """For each state, the variables live on entry: read here, or later before being assigned."""
    live: dict[str, set[str]] = {sid: set(uses.get(sid, ())) for sid in order}
    changed = True
    while changed:
        changed = False
        for sid in reversed(order):
            current = live[sid]
            size = len(current)
            for target, kill in edges.get(sid, ()):
                current |= live.get(target, set()) - kill
            if len(current) != size:
                changed = True
    return live
