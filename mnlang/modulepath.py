"""Where code is looked for: `.mn` modules for `import`, and the Python modules of tools.

For `import a.b` in a file, in order: the importing file's folder, the root of the
project the file belongs to (the folder of its `mnlang.toml`) and the project's
`[modules] path`, each folder of `MNC_PATH` (separated like `PATH`), and `.mn` modules
shipped in installed Python packages: a distribution declares the entry point
`[project.entry-points."mnlang.modules"] NAME = "python_package"`, and `import NAME.x`
reads `x.mn` inside `python_package`. The first folder that holds `a/b.mn` wins; when
none does, the error lists every place looked at.

Tool code (`impl: "tools:f"`) is looked for the same way, from the folder the run's
program was compiled in, then the current project's root and module path, then
`MNC_PATH`, then as an installed module: so a worker started anywhere in a copy of the
project, or with `MNC_PATH` naming the code, finds it (`runtime.tools.module_ref`).
"""

from __future__ import annotations

import os
from pathlib import Path


def is_file(path: Path) -> bool:
    """Whether a file is there to read; False too for a name the system cannot look up
    (too long, a loop of links), which `Path.is_file` raises for: a module name comes
    from the program, so any text may reach here."""
    try:
        return path.is_file()
    except OSError:
        return False


def module_file(folder: Path, module: str) -> Path | None:
    """The file of the Python module `module` (dotted) in `folder`: `a/b.py`, else
    `a/b/__init__.py`; None when neither is there. How an `impl`'s module is found by
    the checker, by the IR's tool hashes and by the runtime (`runtime.tools.module_ref`)."""
    parts = module.split(".")
    for candidate in (
        folder.joinpath(*parts).with_suffix(".py"),
        folder.joinpath(*parts, "__init__.py"),
    ):
        if is_file(candidate):
            return candidate
    return None


def impl_module_file(
    first: Path, module: str, impl_dir: str, start: Path
) -> tuple[Path, Path] | None:
    """The file of an `impl`'s Python module and the folder it was found in: in `first`
    (the folder of the `.mn` file that declares it), else in each of `code_folders(start)`
    joined with `impl_dir` (that `.mn` file's folder relative to the program's), then in
    the folder itself. None when no folder has it (it may still be an installed module)."""
    bases = [first]
    for folder in code_folders(start):
        bases += [folder / impl_dir, folder]
    for base in dict.fromkeys(bases):
        found = module_file(base, module)
        if found is not None:
            return found, base
    return None


ENTRY_POINT_GROUP = "mnlang.modules"


def _env_folders() -> list[Path]:
    return [Path(p) for p in os.environ.get("MNC_PATH", "").split(os.pathsep) if p]


def _project_folders(start: Path) -> list[Path]:
    from mnlang.project import ProjectError, find_project

    try:
        project = find_project(start)
    except ProjectError:
        return []  # reported by the command that reads the project file
    if project is None:
        return []
    return [project.root, *project.module_path]


def code_folders(start: Path) -> list[Path]:
    """The folders searched after `start`: its project's root and module path, then
    `MNC_PATH`; without repeats, in order."""
    folders = [start, *_project_folders(start), *_env_folders()]
    return list(dict.fromkeys(f.resolve() for f in folders))


def find_module(dotted: str, importer: Path) -> tuple[Path | None, list[str]]:
    """The `.mn` file of `import dotted` in `importer`, and the places looked at."""
    parts = dotted.split(".")
    looked: list[str] = []
    for folder in code_folders(importer.parent):
        candidate = folder.joinpath(*parts).with_suffix(".mn")
        looked.append(str(candidate))
        if is_file(candidate):
            return candidate, looked
    packaged, where = _packaged(parts)
    looked.extend(where)
    return packaged, looked


def _packaged(parts: list[str]) -> tuple[Path | None, list[str]]:
    # Imported here: reading installed distributions is slow, and only a missing module needs it.
    from importlib import metadata, resources

    looked: list[str] = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name != parts[0] or len(parts) < 2:
            continue
        try:
            root = resources.files(entry.value)
        except (ImportError, TypeError) as e:
            looked.append(f"package `{entry.value}` (entry point `{entry.name}`): {e}")
            continue
        candidate = Path(str(root.joinpath(*parts[1:]))).with_suffix(".mn")
        looked.append(f"{candidate} (package `{entry.value}`)")
        if is_file(candidate):
            return candidate, looked
    if not looked:
        looked.append(f"installed packages (no `{ENTRY_POINT_GROUP}` entry point `{parts[0]}`)")
    return None, looked
