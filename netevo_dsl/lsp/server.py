"""`netevo lsp`: a Language Server Protocol server over stdio, built on pygls.

Each open document is analysed by the same engine as `netevo check` (`lsp/analysis.py`): diagnostics on
open and, debounced, on change; inlay hints with the inferred shape after each statement; hovers,
definitions, references, completion, document symbols and formatting (`lsp/features.py`). A request that
arrives while a change is waiting for its debounce analyses the new text first, so answers are never stale.

Pure Python like `check`: the server never imports torch. Editors pass `-D` overrides as
`initializationOptions: {"defines": {"hidden": 512}}`.
"""
from __future__ import annotations

import asyncio
import threading

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer

from .. import __version__
from ..errors import NetevoError
from . import features as F
from .analysis import Analysis, analyze, file_path

DEBOUNCE_SECONDS = 0.2

_KINDS = {
    "op": T.CompletionItemKind.Function, "block": T.CompletionItemKind.Class, "value": T.CompletionItemKind.Variable,
    "param": T.CompletionItemKind.Constant, "mask": T.CompletionItemKind.Constant,
    "rule": T.CompletionItemKind.Method, "task": T.CompletionItemKind.Module,
    "activation": T.CompletionItemKind.EnumMember, "setting": T.CompletionItemKind.Property,
    "argument": T.CompletionItemKind.Field, "keyword": T.CompletionItemKind.Keyword,
}
_SYMBOLS = {
    "network": T.SymbolKind.Class, "block": T.SymbolKind.Function, "genome": T.SymbolKind.Struct,
    "param": T.SymbolKind.Constant, "mask": T.SymbolKind.Constant, "mutate": T.SymbolKind.Event,
    "evolve": T.SymbolKind.Event, "input": T.SymbolKind.Variable, "value": T.SymbolKind.Variable,
    "output": T.SymbolKind.Variable, "block_param": T.SymbolKind.TypeParameter,
    "rule": T.SymbolKind.Method, "setting": T.SymbolKind.Property,
}


class NetevoServer(LanguageServer):
    def __init__(self):
        super().__init__("netevo", __version__, text_document_sync_kind=T.TextDocumentSyncKind.Full)
        self.analyses: dict[str, Analysis] = {}
        self.pending: dict[str, asyncio.TimerHandle] = {}
        self.overrides: dict = {}
        self.lock = threading.Lock()

    def analysis(self, uri: str) -> Analysis:
        """The analysis of the document's current text (computed now if a change is still debouncing)."""
        handle = self.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()
            self.publish(uri)
        a = self.analyses.get(uri)
        if a is None:
            self.publish(uri)
            a = self.analyses[uri]
        return a

    def publish(self, uri: str) -> None:
        self.pending.pop(uri, None)
        doc = self.workspace.get_text_document(uri)
        with self.lock:
            a = analyze(doc.source, file_path(uri) or uri, self.overrides)
            self.analyses[uri] = a
        diags = [_diagnostic(uri, d) for d in F.diagnostics(a)]
        self.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=diags,
                                                                          version=doc.version))

    def schedule(self, uri: str) -> None:
        old = self.pending.pop(uri, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_event_loop()
        self.pending[uri] = loop.call_later(DEBOUNCE_SECONDS, self.publish, uri)


def _range(rng) -> T.Range:
    (sl, sc), (el, ec) = rng
    return T.Range(start=T.Position(line=sl, character=sc), end=T.Position(line=el, character=ec))


def _diagnostic(uri: str, d: F.Diagnostic) -> T.Diagnostic:
    related = [T.DiagnosticRelatedInformation(location=T.Location(uri=_uri(path, uri), range=_range(rng)),
                                              message=msg) for (path, rng), msg in d.related]
    return T.Diagnostic(range=_range(d.range), message=d.message, severity=T.DiagnosticSeverity.Error,
                        code=d.code, source="netevo", related_information=related or None)


def _uri(path: str | None, fallback: str) -> str:
    if not path:
        return fallback
    from pathlib import Path

    return Path(path).resolve().as_uri() if not path.startswith("file:") else path


def build_server() -> NetevoServer:
    server = NetevoServer()

    @server.feature(T.INITIALIZE)
    def initialize(ls: NetevoServer, params: T.InitializeParams):
        options = params.initialization_options
        defines = options.get("defines") if isinstance(options, dict) else None
        if isinstance(defines, dict):
            ls.overrides = dict(defines)

    @server.feature(T.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: NetevoServer, params: T.DidChangeConfigurationParams):
        settings = params.settings if isinstance(params.settings, dict) else {}
        defines = (settings.get("netevo") or {}).get("defines")
        if isinstance(defines, dict):
            ls.overrides = dict(defines)
            for uri in list(ls.analyses):
                ls.publish(uri)

    @server.feature(T.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: NetevoServer, params: T.DidOpenTextDocumentParams):
        ls.publish(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: NetevoServer, params: T.DidChangeTextDocumentParams):
        ls.schedule(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: NetevoServer, params: T.DidSaveTextDocumentParams):
        ls.publish(params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: NetevoServer, params: T.DidCloseTextDocumentParams):
        uri = params.text_document.uri
        handle = ls.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()
        ls.analyses.pop(uri, None)
        ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(T.TEXT_DOCUMENT_HOVER)
    def hover(ls: NetevoServer, params: T.HoverParams):
        a = ls.analysis(params.text_document.uri)
        text = F.hover(a, params.position.line, params.position.character)
        if not text:
            return None
        return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text))

    @server.feature(T.TEXT_DOCUMENT_INLAY_HINT)
    def inlay_hint(ls: NetevoServer, params: T.InlayHintParams):
        a = ls.analysis(params.text_document.uri)
        hints = F.inlay_hints(a, params.range.start.line, params.range.end.line)
        return [T.InlayHint(position=T.Position(line=ln, character=ch), label=label, kind=T.InlayHintKind.Type,
                            padding_left=False) for ln, ch, label in hints]

    @server.feature(T.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: NetevoServer, params: T.DefinitionParams):
        a = ls.analysis(params.text_document.uri)
        hit = F.definition(a, params.position.line, params.position.character)
        if hit is None:
            return None
        path, span = hit
        rng = F.lsp_range(a.lines, span) if path == a.path else ((span.line - 1, span.col - 1),
                                                                 (span.line - 1, span.col - 1))
        return T.Location(uri=_uri(path, params.text_document.uri), range=_range(rng))

    @server.feature(T.TEXT_DOCUMENT_REFERENCES)
    def references(ls: NetevoServer, params: T.ReferenceParams):
        a = ls.analysis(params.text_document.uri)
        spans = F.references(a, params.position.line, params.position.character,
                             params.context.include_declaration)
        return [T.Location(uri=params.text_document.uri, range=_range(F.lsp_range(a.lines, s))) for s in spans]

    @server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=["(", ",", " ", "{"]))
    def completion(ls: NetevoServer, params: T.CompletionParams):
        uri = params.text_document.uri
        text = ls.workspace.get_text_document(uri).source
        a = ls.analyses.get(uri)  # the last analysis: completion must not wait for a full check
        items = F.completions(a, text, params.position.line, params.position.character)
        return T.CompletionList(is_incomplete=False, items=[
            T.CompletionItem(label=c.label, kind=_KINDS.get(c.kind), detail=c.detail or None,
                             insert_text=c.insert) for c in items])

    @server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(ls: NetevoServer, params: T.DocumentSymbolParams):
        a = ls.analysis(params.text_document.uri)

        def conv(s: F.Symbol) -> T.DocumentSymbol:
            rng = _range(F.lsp_range(a.lines, s.span))
            sel = _range(F.lsp_range(a.lines, s.selection))
            if (sel.start.line, sel.start.character) < (rng.start.line, rng.start.character) or \
                    (sel.end.line, sel.end.character) > (rng.end.line, rng.end.character):
                sel = rng
            return T.DocumentSymbol(name=s.name, kind=_SYMBOLS.get(s.kind, T.SymbolKind.Variable),
                                    detail=s.detail or None, range=rng, selection_range=sel,
                                    children=[conv(c) for c in s.children] or None)

        return [conv(s) for s in F.document_symbols(a)]

    @server.feature(T.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: NetevoServer, params: T.DocumentFormattingParams):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        try:
            out = F.format_text(doc.source, file_path(params.text_document.uri))
        except NetevoError as e:
            ls.window_show_message(T.ShowMessageParams(type=T.MessageType.Error, message=f"netevo fmt: {e}"))
            return None
        if out == doc.source:
            return []
        lines = doc.source.split("\n")
        end = T.Position(line=len(lines), character=0)
        return [T.TextEdit(range=T.Range(start=T.Position(line=0, character=0), end=end), new_text=out)]

    return server


def main() -> int:
    build_server().start_io()
    return 0


__all__ = ["build_server", "main"]
