"""The code in the documentation is checked, so the docs cannot drift from the language.

Fenced blocks in `docs/*.md` by their tag:

- ```` ```mn ````: a whole file; it must check with no errors and with exactly the
  warnings named on a `# warning: W101` line among its first lines (none if there is
  no such line).
- ```` ```mn-error ````: a whole file whose first comment names the errors it must
  produce, `# error: E301` (several codes separated by spaces); the errors found must
  be exactly those.
- ```` ```mn-fragment ````: only parsed. A fragment that does not start with a
  declaration is parsed as the body of a workflow.

A block whose first line is `# file: name.mn` is also written beside every other
block of its page, so a page can show a module and a file that imports it.

`docs/errors.md` must list every code of `mnlang.errorcodes` under a heading
`## CODE: title` with the table's title, and show an example that produces it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnlang.checker import check
from mnlang.diagnostics import Diagnostic
from mnlang.errorcodes import CODES
from mnlang.syntax.parser import parse

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHECKED_TAGS = ("mn", "mn-error", "mn-fragment")
# Codes about files, not text (a missing or unreadable source, a bad price table or IR file,
# a tool's Python module, the providers installed): no `.mn` alone shows them (E125-E128:
# test_check_impls.py; E254: test_provider_plugins.py).
# E096 is about JSON input; E015 needs a line of 1,201 parentheses, which
# tests/cases/syntax_too_deep.mn has and the page does not.
FILE_CODES = {
    *("E015", "E090", "E091", "E092", "E093", "E094", "E095", "E096"),
    *("E125", "E126", "E127", "E128"),
    "E254",
}

_FENCE = re.compile(r"^```([\w-]*)\s*$")
_FILE = re.compile(r"^#\s*file:\s*([\w/]+\.mn)\s*$")
_DECLARES = re.compile(r"^#\s*(error|warning):\s*((?:[EW]\d{3}[\s,]*)+)", re.M)
_HEADING = re.compile(r"^## ([EW]\d{3}): (.+)$", re.M)
_DECL_WORDS = frozenset(
    [
        "import",
        "type",
        "enum",
        "tool",
        "effect",
        "agent",
        "event",
        "policy",
        "schedule",
        "workflow",
        "scenario",
    ]
)


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence
    tag: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.doc.name}:{self.line}"

    @property
    def file_name(self) -> str | None:
        first = self.text.split("\n", 1)[0]
        m = _FILE.match(first)
        return m.group(1) if m else None

    def declared(self, kind: str) -> set[str]:
        """Codes named by `# error:` or `# warning:` lines among the first five lines."""
        head = "\n".join(self.text.splitlines()[:5])
        codes: set[str] = set()
        for m in _DECLARES.finditer(head):
            if m.group(1) == kind:
                codes |= set(re.findall(r"[EW]\d{3}", m.group(2)))
        return codes


def blocks_of(doc: Path) -> list[Block]:
    blocks: list[Block] = []
    tag: str | None = None
    start = 0
    body: list[str] = []
    for lineno, line in enumerate(doc.read_text("utf-8").splitlines(), 1):
        m = _FENCE.match(line)
        if tag is None and m is not None:
            tag, start, body = m.group(1), lineno, []
        elif tag is not None and line.strip() == "```":
            blocks.append(Block(doc, start, tag, "\n".join(body) + "\n"))
            tag = None
        elif tag is not None:
            body.append(line)
    assert tag is None, f"{doc.name}:{start}: unclosed ``` block"
    return blocks


def all_blocks() -> list[Block]:
    return [b for doc in sorted(DOCS.glob("*.md")) for b in blocks_of(doc)]


def checked_blocks() -> list[Block]:
    return [b for b in all_blocks() if b.tag in CHECKED_TAGS]


def _write(block: Block, tmp_path: Path) -> Path:
    """Write the block, and the page's `# file:` blocks beside it; return the block's path."""
    for other in blocks_of(block.doc):
        name = other.file_name
        if name is not None and other.tag in CHECKED_TAGS:
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(other.text, "utf-8")
    path = tmp_path / (block.file_name or "main.mn")
    path.write_text(block.text, "utf-8")
    return path


def _shown(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n".join(f"  {d.span}: {d.code} {d.message}" for d in diagnostics)


@pytest.mark.parametrize("block", checked_blocks(), ids=lambda b: b.id)
def test_block(block: Block, tmp_path: Path) -> None:
    if block.tag == "mn-fragment":
        text = block.text
        first_word = next(
            (ln.split()[0] for ln in text.splitlines() if ln.strip()[:1] not in ("", "#")), ""
        )
        if first_word not in _DECL_WORDS:
            text = "workflow fragment() -> str {\n" + text + "}\n"
        _, diagnostics = parse(text, f"{block.id}")
        assert not diagnostics, f"{block.id} does not parse:\n{_shown(diagnostics)}"
        return
    result = check(_write(block, tmp_path))
    errors = {d.code for d in result.errors}
    warnings = {d.code for d in result.diagnostics if d.severity == "warning"}
    report = f"{block.id} ({block.tag}) found:\n{_shown(result.diagnostics)}"
    if block.tag == "mn":
        assert not errors, report
        assert warnings == block.declared("warning"), report
    else:
        expected = block.declared("error")
        assert expected, f"{block.id}: an mn-error block must start with `# error: CODE`"
        assert errors == expected, report


def test_blocks_use_known_tags() -> None:
    """A typo such as ```mnlang would silently escape checking."""
    for block in all_blocks():
        assert not block.tag.startswith("mn") or block.tag in CHECKED_TAGS, block.id


def test_the_language_reference_has_many_checked_examples() -> None:
    blocks = [b for b in checked_blocks() if b.doc.name == "language.md"]
    assert len([b for b in blocks if b.tag == "mn"]) >= 40
    assert len([b for b in blocks if b.tag == "mn-error"]) >= 10


def test_errors_page_lists_every_code_with_its_title() -> None:
    text = (DOCS / "errors.md").read_text("utf-8")
    listed = {code: title.strip() for code, title in _HEADING.findall(text)}
    assert sorted(set(CODES) - set(listed)) == [], "codes missing from docs/errors.md"
    assert sorted(set(listed) - set(CODES)) == [], "docs/errors.md lists codes that do not exist"
    stale = {c: (listed[c], CODES[c].title) for c in CODES if listed[c] != CODES[c].title}
    assert not stale, f"titles out of step with mnlang/errorcodes.py: {stale}"


def test_errors_page_shows_each_code_happen() -> None:
    shown: set[str] = set()
    for block in blocks_of(DOCS / "errors.md"):
        if block.tag == "mn-error":
            shown |= block.declared("error")
        elif block.tag == "mn":
            shown |= block.declared("warning")
    missing = sorted(set(CODES) - FILE_CODES - shown)
    assert not missing, f"no example in docs/errors.md produces {missing}"
