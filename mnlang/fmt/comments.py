"""Comments for the formatter: handed out in source order to the places that print them.

The layout walks the AST in source order and asks, at each place where a
comment may stand (before a statement, at the end of its line, after an
opening brace, before a closing one), for the comments not yet printed that
lie before that place. Since places are visited in source order and comments
are handed out in order, every comment is printed exactly once and comments
keep their order.
"""

from __future__ import annotations

from bisect import bisect_right

from mnlang.syntax.lexer import Comment


class CommentQueue:
    def __init__(self, comments: list[Comment], source: str) -> None:
        self.comments = sorted(comments, key=lambda c: c.pos)
        self.next = 0
        self.source = source
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(source) if ch == "\n"]

    def line_of(self, pos: int) -> int:
        """The 1-based line of an offset."""
        return bisect_right(self.line_starts, pos)

    def before(self, pos: int) -> list[Comment]:
        """The comments not yet printed that start before `pos`."""
        start = self.next
        while self.next < len(self.comments) and self.comments[self.next].pos < pos:
            self.next += 1
        return self.comments[start : self.next]

    def ending_line(self, end: int, limit: int) -> list[Comment]:
        """The comments left inside a construct that ends at `end`, and the one that follows it
        on its last line (before `limit`, where the next construct starts)."""
        taken = self.before(end)
        if self.next < len(self.comments):
            after = self.comments[self.next]
            if after.pos < limit and self.line_of(after.pos) == self.line_of(max(end - 1, 0)):
                taken.append(after)
                self.next += 1
        return taken

    def remaining(self) -> list[Comment]:
        return self.before(len(self.source) + 1)

    def blank_line_before(self, pos: int) -> bool:
        """Whether an empty line separates `pos` from the text before it."""
        newlines = 0
        i = pos - 1
        while i >= 0 and self.source[i] in " \t\r\f\n":
            if self.source[i] == "\n":
                newlines += 1
                if newlines == 2:
                    return True
            i -= 1
        return False


def text_of(comment: Comment) -> str:
    """A comment as printed: its text without trailing blanks."""
    return comment.text.rstrip()
