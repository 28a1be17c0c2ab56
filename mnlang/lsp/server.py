"""`mnc lsp`: the language server (pygls, on standard input and output).

Diagnostics are the checker's, with the same codes and spans as `mnc check`,
published on open and save at once, and after a change once the text has been
quiet for a moment (for the open file and any module it imports that has
problems), tagged with the version of the text checked. Hover, go to
definition, references, rename, completion, document symbols, formatting and
quick fixes (the diagnostics' own fixes, the edits their `help:` describes)
read the last analysis of the document, redone first if the text changed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import PositionCodec, TextDocument

from mnlang import __version__
from mnlang.checker.program import Program
from mnlang.diagnostics import Diagnostic
from mnlang.fmt import FormatterBug, format_source
from mnlang.lsp.analysis import Analysis, analyse, definition_span, nodes_at
from mnlang.lsp.completion import Item, Names, complete, names_of
from mnlang.lsp.hover import hover_markdown
from mnlang.lsp.positions import SourceLines, to_offset, to_range, whole_text
from mnlang.lsp.references import (
    Occurrence,
    RenameRefused,
    Target,
    check_rename,
    check_writable,
    module_of,
    name_span,
    references,
    target_at,
)
from mnlang.lsp.symbols import document_symbols
from mnlang.span import Span
from mnlang.syntax.parser import parse

DEBOUNCE_SECONDS = 0.15  # quiet time after a change before the document is checked

_SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}
_ITEM_KINDS = {
    "keyword": types.CompletionItemKind.Keyword,
    "option": types.CompletionItemKind.Property,
    "type": types.CompletionItemKind.Class,
    "error_kind": types.CompletionItemKind.EnumMember,
    "declaration": types.CompletionItemKind.Function,
    "variable": types.CompletionItemKind.Variable,
    "builtin": types.CompletionItemKind.Function,
    "member": types.CompletionItemKind.Field,
}


class RequestFailed(JsonRpcException):
    """A request the server refuses, with a message for the person (LSP's RequestFailed)."""

    CODE = -32803


class _QuietRefusals(logging.Filter):
    """Keeps refusals (a user's mistake, answered in the reply) out of the error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], RequestFailed))


class MnServer(LanguageServer):
    """The server and what it knows of each open document."""

    def __init__(self) -> None:
        super().__init__("mnlang", __version__)
        self.analyses: dict[str, Analysis] = {}
        self.names: dict[str, Names] = {}  # of the last analysis that parsed, per document
        self.published: dict[str, set[str]] = {}  # the URIs each document published to
        self.debounce = DEBOUNCE_SECONDS
        self.pending: dict[str, asyncio.TimerHandle] = {}  # the scheduled check per document

    def path_of(self, uri: str) -> Path:
        path = to_fs_path(uri)
        return Path(path).resolve() if path else Path.cwd() / "untitled.mn"

    def analysis(self, uri: str) -> tuple[TextDocument, Analysis]:
        """The document and its analysis, redone when the text changed since."""
        doc = self.workspace.get_text_document(uri)
        current = self.analyses.get(uri)
        if current is None or current.text != doc.source:
            current = self.validate(uri)
        return doc, current

    def validate(self, uri: str) -> Analysis:
        """Check the document and publish its diagnostics."""
        self.cancel_pending(uri)
        doc = self.workspace.get_text_document(uri)
        result = analyse(self.path_of(uri), doc.source, doc.version)
        self.analyses[uri] = result
        if result.result.program is not None:
            self.names[uri] = names_of(result.result.program)
        self.publish(uri, result, doc.position_codec)
        return result

    def validate_when_quiet(self, uri: str) -> None:
        """Check the document once no change has come for the debounce time; each change
        puts the check off again."""
        self.cancel_pending(uri)
        if self.debounce <= 0:
            self.validate(uri)
            return
        loop = asyncio.get_running_loop()
        self.pending[uri] = loop.call_later(self.debounce, self._quiet, uri)

    def _quiet(self, uri: str) -> None:
        self.pending.pop(uri, None)
        doc = self.open_document(uri)
        if doc is None:
            return
        current = self.analyses.get(uri)
        if current is not None and current.version == doc.version and current.text == doc.source:
            return  # a request has checked (and published) this text already
        self.validate(uri)

    def cancel_pending(self, uri: str) -> None:
        handle = self.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()

    def names_for_completion(self, uri: str, text: str, offset: int) -> Names:
        """The names of the last analysis that parsed; if none did, of the text without the
        line being typed (which is what usually keeps it from parsing)."""
        names = self.names.get(uri)
        if names is not None:
            return names
        start = text.rfind("\n", 0, offset) + 1
        end = text.find("\n", offset)
        without = text[:start] + (text[end + 1 :] if end >= 0 else "")
        program = analyse(self.path_of(uri), without).result.program
        return names_of(program) if program is not None else Names()

    def publish(self, uri: str, analysis: Analysis, codec: PositionCodec) -> None:
        by_uri: dict[str, list[types.Diagnostic]] = {uri: []}
        for d in analysis.result.diagnostics:
            target = self.uri_of(d.span.file) if d.span is not None else uri
            lines = self.lines_of(analysis, d.span.file if d.span else str(analysis.path))
            by_uri.setdefault(target, []).append(self.diagnostic(d, analysis, lines, codec))
        for stale in self.published.get(uri, set()) - set(by_uri):
            by_uri[stale] = []
        self.published[uri] = {u for u, items in by_uri.items() if items and u != uri}
        for target, items in by_uri.items():
            version = analysis.version if target == uri else None
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=target, diagnostics=items, version=version)
            )

    def diagnostic(
        self, d: Diagnostic, analysis: Analysis, lines: SourceLines, codec: PositionCodec
    ) -> types.Diagnostic:
        message = d.message
        for note in d.notes:
            message += f"\nnote: {note}"
        if d.help:
            message += f"\nhelp: {d.help}"
        related = [
            types.DiagnosticRelatedInformation(
                location=self.location(label.span, analysis, codec), message=label.message
            )
            for label in d.labels
        ]
        return types.Diagnostic(
            range=to_range(d.span, lines, codec),
            message=message,
            severity=_SEVERITY[d.severity],
            code=d.code,
            source="mnc",
            related_information=related or None,
        )

    def location(self, span: Span, analysis: Analysis, codec: PositionCodec) -> types.Location:
        lines = self.lines_of(analysis, span.file)
        return types.Location(uri=self.uri_of(span.file), range=to_range(span, lines, codec))

    def lines_of(self, analysis: Analysis, file: str) -> SourceLines:
        """The text of a file the analysis read: the document itself, an imported module,
        or (for a module that did not parse) the file on disk."""
        if Path(file) == analysis.path:
            return SourceLines(analysis.text)
        program = analysis.result.program
        if program is not None:
            for module in program.modules.values():
                if str(module.path) == file:
                    return SourceLines(module.tree.source)
        try:
            return SourceLines(Path(file).read_text("utf-8"))
        except (OSError, UnicodeDecodeError):
            return SourceLines("")

    def uri_of(self, file: str) -> str:
        return from_fs_path(file) or Path(file).as_uri()

    def target(self, uri: str, position: types.Position) -> tuple[Analysis, Target, Span] | None:
        """The analysis of a document, what the name at `position` names and the span of
        that name, when it names something with references."""
        doc, analysis = self.analysis(uri)
        program = analysis.result.program
        if program is None:
            return None
        offset = to_offset(position, SourceLines(doc.source), doc.position_codec)
        path = nodes_at(program.root.tree, offset)
        target = target_at(program, program.root, path)
        if target is None:
            return None
        return analysis, target, name_span(path[-1])

    def programs_naming(self, analysis: Analysis, target: Target) -> list[Program]:
        """The document's program and those of the other open documents that read the
        target's file as it is now (their references are found too)."""
        programs = [analysis.result.program] if analysis.result.program is not None else []
        for uri, other in self.analyses.items():
            program = other.result.program
            doc = self.open_document(uri)
            if other is analysis or program is None or doc is None or other.text != doc.source:
                continue
            module = module_of(program, target.definition.file)
            if module is not None and module.tree.source == self.current_text(module.path):
                programs.append(program)
        return programs

    def open_document(self, uri: str) -> TextDocument | None:
        """The document, if the editor has it open."""
        docs: dict[str, TextDocument] = self.workspace.text_documents
        return docs.get(uri)

    def current_text(self, path: Path) -> str | None:
        """The text of a file as the editor has it: the open document, else the file."""
        doc = self.open_document(self.uri_of(str(path)))
        if doc is not None:
            return doc.source
        try:
            return path.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def occurrence_location(self, occurrence: Occurrence, codec: PositionCodec) -> types.Location:
        lines = SourceLines(occurrence.module.tree.source)
        return types.Location(
            uri=self.uri_of(str(occurrence.module.path)),
            range=to_range(occurrence.span, lines, codec),
        )


server = MnServer()


@server.feature(types.INITIALIZE)
def initialize(ls: MnServer, params: types.InitializeParams) -> None:
    options = params.initialization_options
    if isinstance(options, dict):
        debounce = options.get("debounceMs")
        if isinstance(debounce, int | float) and not isinstance(debounce, bool) and debounce >= 0:
            ls.debounce = debounce / 1000


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: MnServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.validate(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: MnServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.validate_when_quiet(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: MnServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.validate(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: MnServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.cancel_pending(uri)
    for target in {uri} | ls.published.pop(uri, set()):
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=target, diagnostics=[])
        )
    ls.analyses.pop(uri, None)
    ls.names.pop(uri, None)


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls: MnServer, params: types.HoverParams) -> types.Hover | None:
    doc, analysis = ls.analysis(params.text_document.uri)
    program = analysis.result.program
    if program is None:
        return None
    lines = SourceLines(doc.source)
    offset = to_offset(params.position, lines, doc.position_codec)
    path = nodes_at(program.root.tree, offset)
    text = hover_markdown(program, program.root, path)
    if text is None:
        return None
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
        range=to_range(path[-1].span, lines, doc.position_codec),
    )


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def definition(ls: MnServer, params: types.DefinitionParams) -> types.Location | None:
    doc, analysis = ls.analysis(params.text_document.uri)
    program = analysis.result.program
    if program is None:
        return None
    offset = to_offset(params.position, SourceLines(doc.source), doc.position_codec)
    span = definition_span(program.root, nodes_at(program.root.tree, offset))
    if span is None:
        return None
    return ls.location(span, analysis, doc.position_codec)


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
def find_references(ls: MnServer, params: types.ReferenceParams) -> list[types.Location] | None:
    found = ls.target(params.text_document.uri, params.position)
    if found is None:
        return None
    analysis, target, _ = found
    codec = ls.workspace.get_text_document(params.text_document.uri).position_codec
    return [
        ls.occurrence_location(o, codec)
        for o in references(ls.programs_naming(analysis, target), target)
        if params.context.include_declaration or o.span != target.definition
    ]


@server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
def prepare_rename(
    ls: MnServer, params: types.PrepareRenameParams
) -> types.PrepareRenamePlaceholder:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    _, target, span = _rename_target(ls, params.text_document.uri, params.position)
    try:
        check_writable(target)
    except RenameRefused as e:
        raise RequestFailed(str(e)) from None
    lines = SourceLines(doc.source)
    return types.PrepareRenamePlaceholder(
        range=to_range(span, lines, doc.position_codec), placeholder=target.name
    )


def _rename_target(
    ls: MnServer, uri: str, position: types.Position
) -> tuple[Analysis, Target, Span]:
    found = ls.target(uri, position)
    if found is not None:
        return found
    if ls.analysis(uri)[1].result.program is None:
        raise RequestFailed("this file does not parse: fix its syntax errors, then rename")
    raise RequestFailed("only declarations, enum members, parameters and variables can be renamed")


@server.feature(types.TEXT_DOCUMENT_RENAME)
def rename(ls: MnServer, params: types.RenameParams) -> types.WorkspaceEdit:
    analysis, target, _ = _rename_target(ls, params.text_document.uri, params.position)
    occurrences = references(ls.programs_naming(analysis, target), target)
    try:
        check_rename(target, params.new_name, occurrences)
    except RenameRefused as e:
        raise RequestFailed(str(e)) from None
    codec = ls.workspace.get_text_document(params.text_document.uri).position_codec
    changes: dict[str, list[types.TextEdit]] = {}
    for o in occurrences:
        if o.module.tree.source != ls.current_text(o.module.path):
            raise RequestFailed(
                f"`{o.module.path.name}` changed since it was checked: save it and try again"
            )
        location = ls.occurrence_location(o, codec)
        changes.setdefault(location.uri, []).append(
            types.TextEdit(range=location.range, new_text=params.new_name)
        )
    return types.WorkspaceEdit(changes=changes)


@server.feature(
    types.TEXT_DOCUMENT_COMPLETION,
    types.CompletionOptions(trigger_characters=[".", ":", "["]),
)
def completion(ls: MnServer, params: types.CompletionParams) -> types.CompletionList:
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    offset = to_offset(params.position, SourceLines(doc.source), doc.position_codec)
    items = complete(doc.source, offset, ls.names_for_completion(uri, doc.source, offset))
    return types.CompletionList(is_incomplete=False, items=[_completion_item(i) for i in items])


def _completion_item(item: Item) -> types.CompletionItem:
    return types.CompletionItem(
        label=item.label, kind=_ITEM_KINDS[item.kind], detail=item.detail or None
    )


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def symbols(ls: MnServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol] | None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    module, _ = parse(doc.source, str(ls.path_of(doc.uri)))
    if module is None:
        return None
    return document_symbols(module, SourceLines(doc.source), doc.position_codec)


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
)
def code_actions(ls: MnServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
    """A quick fix for each diagnostic of the document in the range that carries a fix."""
    only = params.context.only
    quickfix = types.CodeActionKind.QuickFix.value
    if only is not None and not any(kind in ("", quickfix) for kind in only):
        return None
    uri = params.text_document.uri
    doc, analysis = ls.analysis(uri)
    lines = SourceLines(doc.source)
    codec = doc.position_codec
    start = to_offset(params.range.start, lines, codec)
    end = to_offset(params.range.end, lines, codec)
    actions: list[types.CodeAction] = []
    for d in analysis.result.diagnostics:
        if d.fix is None or d.span is None or Path(d.span.file) != analysis.path:
            continue
        if d.span.end < start or d.span.start > end:
            continue
        if any(Path(e.span.file) != analysis.path for e in d.fix.edits):
            continue  # a fix in another file is offered where that file is open
        edits = [
            types.TextEdit(range=to_range(e.span, lines, codec), new_text=e.text)
            for e in d.fix.edits
        ]
        actions.append(
            types.CodeAction(
                title=d.fix.title,
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[ls.diagnostic(d, analysis, lines, codec)],
                is_preferred=True,
                edit=types.WorkspaceEdit(changes={uri: edits}),
            )
        )
    return actions


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: MnServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    try:
        result = format_source(doc.source, str(ls.path_of(doc.uri)))
    except FormatterBug as e:
        ls.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Error, message=str(e))
        )
        return None
    if result.text is None or result.text == doc.source:
        return None
    lines = SourceLines(doc.source)
    return [types.TextEdit(range=whole_text(lines, doc.position_codec), new_text=result.text)]


def serve() -> None:
    """Serve one editor on standard input and output until it disconnects."""
    logging.getLogger("pygls.protocol.json_rpc").addFilter(_QuietRefusals())
    server.start_io()
