"""A minimal Language Server Protocol client over stdio (JSON-RPC with Content-Length framing), as an
editor speaks it, for driving `netevo lsp` in tests. Written from the LSP 3.17 specification's base protocol."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path


class LspClient:
    def __init__(self, args=(sys.executable, "-m", "netevo_dsl.cli", "lsp"), cwd=None):
        self.proc = subprocess.Popen(list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cwd)
        self.next_id = 0
        self.responses: dict[int, dict] = {}
        self.notifications: "queue.Queue[dict]" = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        out = self.proc.stdout
        while True:
            headers = {}
            while True:
                line = out.readline()
                if not line:
                    return
                line = line.decode("ascii").strip()
                if not line:
                    break
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            body = json.loads(out.read(int(headers["content-length"])))
            if "id" in body and "method" not in body:
                self.responses[body["id"]] = body
            elif "method" in body and "id" in body:  # a request from the server (e.g. workspace/configuration)
                self._send({"jsonrpc": "2.0", "id": body["id"], "result": None})
            else:
                self.notifications.put(body)

    def _send(self, message: dict):
        data = json.dumps(message).encode("utf-8")
        self.proc.stdin.write(f"Content-Length: {len(data)}\r\n\r\n".encode("ascii") + data)
        self.proc.stdin.flush()

    def request(self, method: str, params, timeout: float = 30.0):
        self.next_id += 1
        rid = self.next_id
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while rid not in self.responses:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer to {method}: {self.stderr_tail()}")
            time.sleep(0.002)
        answer = self.responses.pop(rid)
        if "error" in answer:
            raise RuntimeError(f"{method} failed: {answer['error']}")
        return answer.get("result")

    def notify(self, method: str, params):
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait_notification(self, method: str, uri: str | None = None, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method}: {self.stderr_tail()}")
            try:
                msg = self.notifications.get(timeout=left)
            except queue.Empty:
                continue
            if msg.get("method") == method and (uri is None or msg["params"].get("uri") == uri):
                return msg["params"]

    def initialize(self, root: Path, options=None):
        result = self.request("initialize", {"processId": None, "rootUri": root.resolve().as_uri(),
                                             "capabilities": {}, "initializationOptions": options or {}})
        self.notify("initialized", {})
        return result

    def open(self, path: Path, text: str | None = None) -> str:
        uri = path.resolve().as_uri()
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "netevo", "version": 1,
            "text": text if text is not None else path.read_text(encoding="utf-8")}})
        return uri

    def change(self, uri: str, text: str, version: int):
        self.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                               "contentChanges": [{"text": text}]})

    def stderr_tail(self) -> str:
        return ""

    def close(self):
        try:
            self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - a server that fails to stop is killed
            self.proc.kill()
            self.proc.wait()
