"""Variable scopes, and what changed in them since the last commit.

The workflow's main line has the scope of branch `""`; each `parallel for` item has its
own scope over the scope it was started from (reads fall through, writes stay in the
item); `parallel` branches share the scope they were started from. A scope records
which variables changed so that a commit writes only those, and keeps collected lists
incrementally: a list started with `start_list` is stored one row per item, and a
commit appends only the new items.
"""

from __future__ import annotations

from mnlang.runtime.values import Value, to_stored
from mnlang.stores.base import (
    AppendList,
    DeleteVar,
    SetList,
    SetListItem,
    SetVar,
    StateOp,
)


class Scope:
    __slots__ = ("_committed_len", "_deleted", "_dirty", "_set_items", "branch", "parent", "values")

    def __init__(
        self, branch: str, parent: Scope | None = None, values: dict[str, Value] | None = None
    ) -> None:
        self.branch = branch
        self.parent = parent
        self.values: dict[str, Value] = values if values is not None else {}
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        # Incremental lists: items already stored (-1: store the whole list at the next
        # commit), and items replaced in place since.
        self._committed_len: dict[str, int] = {}
        self._set_items: dict[str, set[int]] = {}

    def get(self, name: str) -> Value:
        scope: Scope | None = self
        while scope is not None:
            values = scope.values
            if name in values:
                return values[name]
            scope = scope.parent
        raise KeyError(name)

    def holder(self, name: str) -> Scope | None:
        """The scope in this chain that holds `name`."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.values:
                return scope
            scope = scope.parent
        return None

    def set(self, name: str, value: Value) -> None:
        self.values[name] = value
        self._dirty.add(name)
        self._deleted.discard(name)
        self._committed_len.pop(name, None)

    def delete(self, name: str) -> None:
        if self.values.pop(name, _MISSING) is not _MISSING:
            self._deleted.add(name)
        self._dirty.discard(name)
        self._committed_len.pop(name, None)
        self._set_items.pop(name, None)

    def start_list(self, name: str, items: list[Value] | None = None) -> None:
        """A list variable stored item by item (for collecting loops)."""
        self.values[name] = items if items is not None else []
        self._dirty.discard(name)
        self._deleted.discard(name)
        self._committed_len[name] = -1
        self._set_items.pop(name, None)

    def restore_list(self, name: str, items: list[Value]) -> None:
        """A list loaded from the store, already stored item by item."""
        self.values[name] = items
        self._committed_len[name] = len(items)

    def append(self, name: str, item: Value) -> None:
        self.values[name].append(item)

    def set_item(self, name: str, index: int, item: Value) -> None:
        self.values[name][index] = item
        if self._committed_len.get(name, -1) > index:
            self._set_items.setdefault(name, set()).add(index)

    @property
    def changed(self) -> bool:
        return bool(self._dirty or self._deleted or self._set_items) or any(
            stored < 0 or stored != len(self.values[name])
            for name, stored in self._committed_len.items()
        )

    def flush(self, ops: list[StateOp]) -> None:
        """Add the ops that store this scope's changes, and count them as committed."""
        branch = self.branch
        values = self.values
        for name in self._deleted:
            ops.append(DeleteVar(branch, name))
        for name in self._dirty:
            ops.append(SetVar(branch, name, to_stored(values[name])))
        for name, stored in self._committed_len.items():
            items = values[name]
            if stored < 0:
                ops.append(SetList(branch, name, [to_stored(v) for v in items]))
            else:
                for index in sorted(self._set_items.get(name, ())):
                    ops.append(SetListItem(branch, name, index, to_stored(items[index])))
                if len(items) > stored:
                    ops.append(AppendList(branch, name, [to_stored(v) for v in items[stored:]]))
            self._committed_len[name] = len(items)
        self._dirty.clear()
        self._deleted.clear()
        self._set_items.clear()

    def forget_changes(self) -> None:
        """Drop pending changes: the scope's branch is being dropped from the store."""
        self._dirty.clear()
        self._deleted.clear()
        self._set_items.clear()
        self._committed_len.clear()


_MISSING = object()
