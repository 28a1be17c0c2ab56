"""Reading source files: every way a file can be unreadable is a coded diagnostic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mnlang.checker import check
from mnlang.sources import MAX_SOURCE_BYTES, read_source


def test_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "a.mn"
    path.write_text("type A { x: int }\n", "utf-8")
    assert read_source(path) == ("type A { x: int }\n", None)


def test_missing_file(tmp_path: Path) -> None:
    text, problem = read_source(tmp_path / "nope.mn")
    assert text is None and problem is not None
    assert problem.code == "E090"
    assert "nope.mn" in problem.message and problem.help


def test_directory(tmp_path: Path) -> None:
    text, problem = read_source(tmp_path)
    assert text is None and problem is not None
    assert problem.code == "E091"
    assert "is a directory" in problem.message
    assert problem.help is not None and "*.mn" in problem.help


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mn"
    os.mkfifo(fifo)
    _, problem = read_source(fifo)
    assert problem is not None and problem.code == "E091"
    assert "not a regular file" in problem.message


def test_not_utf8_points_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.mn"
    path.write_bytes(b"type A {\n  caf\xe9: int\n}\n")
    text, problem = read_source(path)
    assert text is None and problem is not None and problem.span is not None
    assert problem.code == "E092"
    assert (problem.span.line, problem.span.col) == (2, 6)
    assert "0xe9" in problem.message


def test_too_large(tmp_path: Path) -> None:
    path = tmp_path / "huge.mn"
    with path.open("wb") as f:
        f.truncate(10 * 1024 * 1024)  # sparse: the size check comes before reading
    text, problem = read_source(path)
    assert text is None and problem is not None
    assert problem.code == "E093"
    assert "10.0 MB" in problem.message and f"{MAX_SOURCE_BYTES // 1048576} MB" in problem.message


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.mn"
    path.write_bytes("\ufefftype A { x: int }\n".encode())
    assert read_source(path)[0] == "type A { x: int }\n"


def test_empty_file_warns(tmp_path: Path) -> None:
    path = tmp_path / "empty.mn"
    path.write_text("", "utf-8")
    assert read_source(path) == ("", None)
    result = check(path)
    assert [(d.code, d.message) for d in result.diagnostics] == [
        ("W001", "empty file: nothing to check")
    ]
    assert not result.errors


def test_whitespace_and_comments_only_warn_too(tmp_path: Path) -> None:
    path = tmp_path / "comments.mn"
    path.write_text("\n\n# nothing here yet\n   \n", "utf-8")
    assert [d.code for d in check(path).diagnostics] == ["W001"]


def test_an_unreadable_import_is_reported_at_its_bad_byte(tmp_path: Path) -> None:
    (tmp_path / "helpers.mn").write_bytes(b"type B { x: int }\n\xff\n")
    main = tmp_path / "main.mn"
    main.write_text("import helpers\n\ntype A { x: int }\n", "utf-8")
    result = check(main)
    (problem,) = result.diagnostics
    assert problem.code == "E092" and problem.span is not None
    assert (Path(problem.span.file).name, problem.span.line) == ("helpers.mn", 2)


def test_a_name_too_long(tmp_path: Path) -> None:
    _, problem = read_source(tmp_path / ("a" * 5000 + ".mn"))
    assert problem is not None and problem.code == "E091"
    assert "File name too long" in problem.message


def test_a_loop_of_symbolic_links(tmp_path: Path) -> None:
    (tmp_path / "one.mn").symlink_to(tmp_path / "two.mn")
    (tmp_path / "two.mn").symlink_to(tmp_path / "one.mn")
    _, problem = read_source(tmp_path / "one.mn")
    assert problem is not None and problem.code == "E091"


def test_a_dangling_symbolic_link_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "gone.mn").symlink_to(tmp_path / "nowhere.mn")
    _, problem = read_source(tmp_path / "gone.mn")
    assert problem is not None and problem.code == "E090"
