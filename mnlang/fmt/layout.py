"""The canonical layout of a module: AST and comments to a `Doc`.

Rules: two-space indentation; one declaration, field, option or statement per
line; blank lines between them kept, at most one; the bodies of declarations,
checkpoints and statements always open a block, while option values, record
literals, lists, arguments, parameters, enum members and import names stay on
one line when they fit and go one per line otherwise; a `match` arm whose
body is a single short statement stays on the arm's line. Literals are
printed as written (so `\"\"\"` strings keep their text); parentheses are kept
where the source has them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from mnlang.fmt.comments import CommentQueue, text_of
from mnlang.fmt.doc import HARDLINE, LINE, SOFTLINE, Doc, Group, IfBreak, Nest, TrailingComment
from mnlang.syntax import ast
from mnlang.syntax.lexer import Comment

N = TypeVar("N", bound=ast.Node)

# Binding strength of binary operators: a chain of one strength breaks as a unit.
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    **dict.fromkeys(("==", "!=", "<", ">", "<=", ">="), 4),
    "??": 5,
    "+": 6,
    "-": 6,
    "*": 7,
    "/": 7,
    "%": 7,
}


class Layout:
    """Builds the `Doc` of one module, printing each comment at the first place after it."""

    def __init__(self, module: ast.Module) -> None:
        self.src = module.source
        self.module = module
        self.comments = CommentQueue(module.comments, module.source)

    # ---- sequences of lines ----------------------------------------------------

    def document(self) -> Doc:
        decls: list[ast.Node] = [*self.module.imports, *self.module.decls]
        decls.sort(key=lambda d: d.span.start)
        return self.lines(decls, self.decl, len(self.src) + 1, first=True)

    def lines(
        self,
        children: Sequence[N],
        render: Callable[[N], Doc],
        close: int,
        first: bool,
    ) -> list[Doc]:
        """One line per child, each with its comments; blank lines kept, at most one.

        Every line starts with a hard line break, so the caller nests the result.
        """
        out: list[Doc] = []
        for i, child in enumerate(children):
            start = child.span.start
            limit = children[i + 1].span.start if i + 1 < len(children) else close
            for comment in self.comments.before(start):
                first = self.own_line(out, comment.pos, text_of(comment), first)
            out.append(HARDLINE)
            if not first and self.comments.blank_line_before(start):
                out.append(HARDLINE)
            first = False
            out.append(render(child))
            out.extend(self.trailing(child.span.end, limit))
        for comment in self.comments.before(close):
            first = self.own_line(out, comment.pos, text_of(comment), first)
        return out

    def own_line(self, out: list[Doc], pos: int, text: str, first: bool) -> bool:
        out.append(HARDLINE)
        if not first and self.comments.blank_line_before(pos):
            out.append(HARDLINE)
        out.append(text)
        return False

    def trailing(self, end: int, limit: int) -> list[Doc]:
        """The comment at the end of a construct's last line, and any left inside it."""
        taken = self.comments.ending_line(end, limit)
        if not taken:
            return []
        out: list[Doc] = [TrailingComment(text_of(taken[0]))]
        for comment in taken[1:]:
            out.extend([HARDLINE, text_of(comment)])
        return out

    def block_of(
        self, brace: int, children: Sequence[N], render: Callable[[N], Doc], close: int
    ) -> Doc:
        """`{`, one line per child, `}`: the body of a declaration or statement."""
        limit = children[0].span.start if children else close
        opening = self.opening(brace, limit)
        body = self.lines(children, render, close, first=not opening)
        if not opening and not body:
            return "{}"
        head: list[Doc] = ["{"]
        if opening:
            head.append(TrailingComment(text_of(opening[0])))
            rest: list[Doc] = []
            for comment in opening[1:]:
                rest.extend([HARDLINE, text_of(comment)])
            body = rest + body
        return [*head, Nest(body), HARDLINE, "}"]

    def opening(self, brace: int, limit: int) -> list[Comment]:
        """Comments left in a header before its `{`, and the one after `{` on its line."""
        return self.comments.ending_line(brace + 1, limit)

    def block(self, block: ast.Block) -> Doc:
        return self.block_of(block.span.start, block.stmts, self.stmt, block.span.end - 1)

    # ---- sequences that may stay on one line -----------------------------------

    def group(
        self,
        open_: str,
        close_: str,
        children: Sequence[N],
        render: Callable[[N], Doc],
        close: int,
        *,
        commas: bool,
        padded: bool,
    ) -> Doc:
        """`open_ a, b close_` on one line when it fits, else one child per line.

        Broken, the children end in commas when `commas` (lists, arguments) and in
        new lines only otherwise (option blocks, enum members); `padded` puts spaces
        inside the brackets of the one-line form (`{ a: 1 }`).
        """
        inner: list[Doc] = []
        line = LINE if padded else SOFTLINE
        for i, child in enumerate(children):
            last = i == len(children) - 1
            limit = close if last else children[i + 1].span.start
            inner.append(line if i == 0 else LINE)
            for comment in self.comments.before(child.span.start):
                inner.extend([text_of(comment), HARDLINE])
            inner.append(render(child))
            if commas:
                inner.append(IfBreak(",") if last else ",")
            elif not last:
                inner.append(IfBreak("", ","))
            inner.extend(self.trailing(child.span.end, limit))
        for comment in self.comments.before(close):
            inner.extend([HARDLINE, text_of(comment)])
        if not inner:
            return open_ + close_
        return Group([open_, Nest(inner), line, close_])

    # ---- declarations ----------------------------------------------------------

    def decl(self, node: ast.Node) -> Doc:
        if isinstance(node, ast.Import):
            return self.import_(node)
        if isinstance(node, ast.TypeDecl):
            brace = self.find(node.name.span.end, "{")
            fields = self.block_of(brace, node.fields, self.field_decl, node.span.end - 1)
            return ["type ", node.name.name, " ", fields]
        if isinstance(node, ast.EnumDecl):
            return ["enum ", node.name.name, " ", self.enum_members(node)]
        if isinstance(node, ast.ErrorDecl):
            return ["error ", node.name.name]
        if isinstance(node, ast.CallableDecl):
            head = [node.kind, " ", node.name.name, self.params(node)]
            return [*head, " -> ", self.type_ref(node.returns), " ", self.options(node.options)]
        if isinstance(node, ast.EventDecl):
            payload: list[Doc] = [" -> ", self.type_ref(node.payload)] if node.payload else []
            return ["event ", node.name.name, *payload]
        if isinstance(node, ast.PolicyDecl | ast.ScheduleDecl | ast.ScenarioDecl):
            keyword = {ast.PolicyDecl: "policy", ast.ScheduleDecl: "schedule"}.get(
                type(node), "scenario"
            )
            return [keyword, " ", node.name.name, " ", self.options(node.options)]
        if isinstance(node, ast.WorkflowDecl):
            return self.workflow(node)
        raise TypeError(f"no layout for {type(node).__name__}")

    def import_(self, node: ast.Import) -> Doc:
        head: list[Doc] = ["import ", node.dotted]
        if not node.names:
            return head
        names = self.group(
            "{",
            "}",
            node.names,
            lambda n: n.name,
            node.span.end - 1,
            commas=True,
            padded=True,
        )
        return [*head, " ", names]

    def enum_members(self, node: ast.EnumDecl) -> Doc:
        return self.group(
            "{",
            "}",
            node.members,
            lambda m: m.name,
            node.span.end - 1,
            commas=False,
            padded=True,
        )

    def field_decl(self, node: ast.FieldDecl | ast.Param) -> Doc:
        default: list[Doc] = [" = ", self.expr(node.default)] if node.default else []
        described = node.description if isinstance(node, ast.Param) else None
        doc: list[Doc] = [" ", self.expr(described)] if described is not None else []
        return [node.name.name, ": ", self.type_ref(node.type), *default, *doc]

    def params(self, node: ast.CallableDecl | ast.WorkflowDecl) -> Doc:
        open_paren = self.find(node.name.span.end, "(")
        after = node.params[-1].span.end if node.params else open_paren + 1
        close = self.find(after, ")")
        return self.group("(", ")", node.params, self.field_decl, close, commas=True, padded=False)

    def options(self, node: ast.ObjectLit) -> Doc:
        """A declaration's or checkpoint's option block: one option per line."""
        return self.block_of(node.span.start, node.entries, self.entry, node.span.end - 1)

    def workflow(self, node: ast.WorkflowDecl) -> Doc:
        head = ["workflow ", node.name.name, self.params(node), " -> ", self.type_ref(node.returns)]
        children: list[ast.Stmt] = [*node.options, *node.body.stmts]
        body = self.block_of(node.body.span.start, children, self.stmt, node.body.span.end - 1)
        cleanup = node.on_failure
        if cleanup is None:
            return [*head, " ", body]
        var: list[Doc] = [" as ", cleanup.var.name] if cleanup.var else []
        return [*head, " ", body, " on_failure", *var, " ", self.block(cleanup.body)]

    def type_ref(self, node: ast.TypeRef) -> str:
        args = f"[{', '.join(self.type_ref(a) for a in node.args)}]" if node.args else ""
        return node.name + args + ("?" if node.optional else "")

    # ---- statements ------------------------------------------------------------

    def stmt(self, node: ast.Stmt) -> Doc:
        body = self.stmt_body(node)
        if node.label is not None:
            return ["@", node.label.name, " ", body]
        return body

    def stmt_body(self, node: ast.Stmt) -> Doc:
        if isinstance(node, ast.Assign):
            value = node.value
            shown = self.stmt_body(value) if isinstance(value, ast.Stmt) else self.expr(value)
            return [node.target.name, " = ", shown]
        if isinstance(node, ast.ExprStmt):
            return self.expr(node.expr)
        if isinstance(node, ast.OptionStmt):
            return self.entry(node)
        if isinstance(node, ast.If):
            return self.if_(node)
        if isinstance(node, ast.Match):
            arms = self.block_of(
                self.find(node.subject.span.end, "{"), node.arms, self.arm, node.span.end - 1
            )
            return ["match ", self.expr(node.subject), " ", arms]
        if isinstance(node, ast.Select):
            brace = self.find(node.span.start + len("select"), "{")
            return ["select ", self.block_of(brace, node.arms, self.select_arm, node.span.end - 1)]
        if isinstance(node, ast.For):
            head: list[Doc] = ["parallel for " if node.parallel else "for ", node.var.name]
            head.extend([" in ", self.expr(node.iterable)])
            if node.limit:
                head.extend([" limit ", self.expr(node.limit)])
            if node.first:
                head.extend([" first ", self.expr(node.first)])
            return [*head, " ", self.block(node.body)]
        if isinstance(node, ast.While):
            cond = ["while ", self.expr(node.cond), ", ", node.max_key.name, ": "]
            return [*cond, self.expr(node.max), " ", self.block(node.body)]
        if isinstance(node, ast.Parallel):
            return ["parallel ", self.parallel(node)]
        if isinstance(node, ast.Checkpoint):
            return ["checkpoint ", node.name.name, " ", self.options(node.options)]
        if isinstance(node, ast.Wait):
            return self.wait(node)
        if isinstance(node, ast.Try):
            return self.try_(node)
        if isinstance(node, ast.Return):
            return ["return ", self.expr(node.value)] if node.value else "return"
        if isinstance(node, ast.Fail):
            return ["fail ", self.expr(node.message)]
        if isinstance(node, ast.Log):
            return ["log ", self.expr(node.message)]
        if isinstance(node, ast.Publish):
            return ["publish ", node.name.name, " = ", self.expr(node.value)]
        if isinstance(node, ast.Yield):
            return ["yield ", self.expr(node.value)]
        raise TypeError(f"no layout for {type(node).__name__}")

    def if_(self, node: ast.If) -> Doc:
        out: list[Doc] = ["if ", self.expr(node.cond), " ", self.block(node.then)]
        if isinstance(node.orelse, ast.If):
            out.extend([" else ", self.if_(node.orelse)])
        elif node.orelse is not None:
            out.extend([" else ", self.block(node.orelse)])
        return out

    def arm(self, node: ast.MatchArm) -> Doc:
        patterns = ", ".join(p.name for p in node.patterns)
        return [patterns, " => ", self.arm_body(node.body)]

    def select_arm(self, node: ast.SelectArm) -> Doc:
        var: list[Doc] = [" as ", node.var.name] if node.var is not None else []
        if node.wait is not None:
            return [self.wait(node.wait), *var, " ", self.block(node.body)]
        if node.checkpoint is not None:
            options = self.options(node.checkpoint.options)
            head: list[Doc] = ["checkpoint ", node.checkpoint.name.name, " ", options]
            return [*head, *var, " ", self.block(node.body)]
        assert node.after is not None
        return ["after ", self.expr(node.after), " ", self.block(node.body)]

    def arm_body(self, block: ast.Block) -> Doc:
        """A single short statement stays on the arm's line: `negative => { log "no" }`."""
        if len(block.stmts) != 1:
            return self.block(block)
        stmt = block.stmts[0]
        close = block.span.end - 1
        inner: list[Doc] = []
        for comment in self.comments.before(stmt.span.start):
            inner.extend([text_of(comment), HARDLINE])
        inner.append(self.stmt(stmt))
        inner.extend(self.trailing(stmt.span.end, close))
        for comment in self.comments.before(close):
            inner.extend([HARDLINE, text_of(comment)])
        return Group(["{", Nest([LINE, *inner]), LINE, "}"])

    def parallel(self, node: ast.Parallel) -> Doc:
        # A branch of one statement needs no braces: `{ a = f() }` and `a = f()` are one branch.
        branches: list[ast.Stmt | ast.Block] = [
            b.stmts[0] if len(b.stmts) == 1 else b for b in node.branches
        ]
        brace = self.find(node.span.start + len("parallel"), "{")
        return self.block_of(brace, branches, self.branch, node.span.end - 1)

    def branch(self, node: ast.Stmt | ast.Block) -> Doc:
        return self.block(node) if isinstance(node, ast.Block) else self.stmt(node)

    def wait(self, node: ast.Wait) -> Doc:
        if node.event is None:
            assert node.duration is not None
            return ["wait ", self.expr(node.duration)]
        options: list[Doc] = [" ", self.object(node.options)] if node.options else []
        key: list[Doc] = [" for ", self.expr(node.key)] if node.key is not None else []
        return ["wait ", node.event.name, *key, *options]

    def try_(self, node: ast.Try) -> Doc:
        out: list[Doc] = ["try ", self.block(node.body)]
        for clause in node.catches:
            kinds = ", ".join(k.name for k in clause.kinds)
            var = f" as {clause.var.name}" if clause.var else ""
            out.extend([" catch ", kinds, var, " ", self.block(clause.body)])
        if node.final is not None:
            out.extend([" finally ", self.block(node.final)])
        return out

    def entry(self, node: ast.Entry | ast.OptionStmt) -> Doc:
        value = node.value
        shown = self.object(value) if isinstance(value, ast.ObjectLit) else self.expr(value)
        # A key is kept as written: `"seed"` stays quoted (it may be no name: `"charge-id"`).
        return [self.text(node.key), ": ", shown]

    # ---- expressions -----------------------------------------------------------

    def object(self, node: ast.ObjectLit) -> Doc:
        """An option value `{ a: 1, b: 2 }`: on one line when it fits."""
        return self.group(
            "{", "}", node.entries, self.entry, node.span.end - 1, commas=False, padded=True
        )

    def item(self, node: ast.Expr | ast.ObjectLit) -> Doc:
        return self.object(node) if isinstance(node, ast.ObjectLit) else self.expr(node)

    def expr(self, node: ast.Expr) -> Doc:
        if isinstance(node, ast.Name):
            return node.name
        if isinstance(node, ast.IntLit | ast.FloatLit | ast.MoneyLit | ast.DurationLit):
            return self.text(node)
        if isinstance(node, ast.StrLit):
            return self.text(node)
        if isinstance(node, ast.BoolLit):
            return "true" if node.value else "false"
        if isinstance(node, ast.NullLit):
            return "null"
        if isinstance(node, ast.ListLit):
            return self.group(
                "[", "]", node.items, self.item, node.span.end - 1, commas=True, padded=False
            )
        if isinstance(node, ast.ObjectLit):
            return self.object(node)
        if isinstance(node, ast.RecordLit):
            fields = self.group(
                "{", "}", node.entries, self.entry, node.span.end - 1, commas=False, padded=True
            )
            return [node.type_name.name, " ", fields]
        if isinstance(node, ast.EnumMember):
            return f"{node.type_name.name}.{node.member.name}"
        if isinstance(node, ast.Field):
            return [self.expr(node.obj), ".", node.name.name]
        if isinstance(node, ast.Index):
            return [self.expr(node.obj), "[", self.expr(node.index), "]"]
        if isinstance(node, ast.Call):
            callee = self.expr(node.callee)
            args = self.group(
                "(", ")", node.args, self.expr, node.span.end - 1, commas=True, padded=False
            )
            return ["start ", callee, args] if node.detached else [callee, args]
        if isinstance(node, ast.Unary):
            return [node.op + (" " if node.op == "not" else ""), self.expr(node.operand)]
        if isinstance(node, ast.Binary):
            return self.binary(node)
        if isinstance(node, ast.Paren):
            return ["(", self.expr(node.inner), ")"]
        if isinstance(node, ast.ErrorName):
            return node.name
        raise TypeError(f"no layout for {type(node).__name__}")

    def binary(self, node: ast.Binary) -> Doc:
        """`a + b + c`: a chain of one precedence breaks after its operators, all or none."""
        level = _PRECEDENCE[node.op]
        chain: list[tuple[str, ast.Expr]] = []
        left: ast.Expr = node
        while isinstance(left, ast.Binary) and _PRECEDENCE[left.op] == level:
            chain.append((left.op, left.right))
            left = left.left
        first = self.expr(left)  # operands are laid out in source order, for their comments
        rest: list[Doc] = []
        for op, operand in reversed(chain):
            rest.extend([" ", op, LINE, self.expr(operand)])
        return Group([first, Nest(rest)])

    def text(self, node: ast.Node) -> str:
        """A literal as written in the source."""
        return self.src[node.span.start : node.span.end]

    def find(self, start: int, char: str) -> int:
        """The offset of `char` at or after `start`, past blanks, commas and comments."""
        src = self.src
        i = start
        while i < len(src) and src[i] != char:
            if src[i] == "#":
                newline = src.find("\n", i)
                i = len(src) if newline < 0 else newline
            i += 1
        return i
