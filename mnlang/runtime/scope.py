"""Variable scopes, and what changed in them since the last commit.

The workflow's main line has the scope of branch `""`; each `parallel for` item has its
own scope over the scope it was started from (reads fall through, writes stay in the
item); `parallel` branches share the scope they were started from. A scope records
which variables changed so that a commit writes only those, and keeps collected lists
incrementally: a list started with `start_list` is stored one row per item, and a
commit appends only the new items. A variable set with `set_same` holds the very value of
another variable of the scope and is stored as that variable's name for as long as the
other keeps it (a loop's own reference to the list it iterates): the value is then stored
and loaded once, not twice.
"""

from __future__ import annotations

from mnlang.runtime.values import Value, stored_same, to_stored
from mnlang.stores.base import (
    AppendList,
    DeleteVar,
    SetList,
    SetListItem,
    SetVar,
    StateOp,
)


class Scope:
    __slots__ = (
        "_committed_len",
        "_deleted",
        "_dirty",
        "_linked",
        "_same",
        "_set_items",
        "branch",
        "parent",
        "values",
    )

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
        # Variables that hold the same value as another variable of this scope: by name,
        # the other's name; and the names on either side, for a quick test in `set`.
        self._same: dict[str, str] = {}
        self._linked: set[str] = set()

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
        if name in self._linked:
            self._part(name)
        self.values[name] = value
        self._dirty.add(name)
        self._deleted.discard(name)
        self._committed_len.pop(name, None)

    def set_same(self, name: str, source: str) -> None:
        """Set `name` to the value of `source`, a variable of this scope, and store it as a
        reference to `source` until either is set again or deleted."""
        self.set(name, self.values[source])
        self._same[name] = source
        self._linked.update((name, source))

    def restore_same(self, name: str, source: str) -> None:
        """A variable loaded from the store as a reference to `source`."""
        self.values[name] = self.values[source]
        self._same[name] = source
        self._linked.update((name, source))

    def delete(self, name: str) -> None:
        if name in self._linked:
            self._part(name)
        if self.values.pop(name, _MISSING) is not _MISSING:
            self._deleted.add(name)
        self._dirty.discard(name)
        self._committed_len.pop(name, None)
        self._set_items.pop(name, None)

    def _part(self, name: str) -> None:
        """`name` is about to change: it no longer refers to another variable, and a
        variable that refers to it keeps the value and is stored in full at the next
        commit."""
        self._same.pop(name, None)
        for alias in [a for a, source in self._same.items() if source == name]:
            del self._same[alias]
            self._dirty.add(alias)
        self._linked = {*self._same, *self._same.values()}

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
        same = self._same
        for name in self._dirty:
            stored = stored_same(same[name]) if name in same else to_stored(values[name])
            ops.append(SetVar(branch, name, stored))
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
