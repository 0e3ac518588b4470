"""A real editor no one here wrote: Neovim, headless, with its built-in LSP client attached to `netevo lsp`.

It opens a spec with an error, then reads the diagnostics and a hover through Neovim's own API. Skips where
Neovim is missing (CI installs Debian's `neovim`).
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")
NVIM = shutil.which("nvim")
pytestmark = pytest.mark.skipif(NVIM is None, reason="Neovim is not installed (apt-get install neovim)")

LUA = r"""
local spec, out, python = _G.NETEVO_SPEC, _G.NETEVO_OUT, _G.NETEVO_PYTHON
local id = vim.lsp.start_client({ name = "netevo", cmd = { python, "-m", "netevo_dsl.cli", "lsp" },
                                  root_dir = vim.fn.fnamemodify(spec, ":h") })
vim.cmd("edit " .. vim.fn.fnameescape(spec))
local buf = vim.api.nvim_get_current_buf()
vim.lsp.buf_attach_client(buf, id)
vim.wait(60000, function() return #vim.diagnostic.get(buf) > 0 end, 50)
local diags = {}
for _, d in ipairs(vim.diagnostic.get(buf)) do
  table.insert(diags, { lnum = d.lnum, col = d.col, message = d.message, code = d.code, source = d.source })
end
local params = { textDocument = { uri = vim.uri_from_bufnr(buf) }, position = { line = 2, character = 9 } }
local answers = vim.lsp.buf_request_sync(buf, "textDocument/hover", params, 60000) or {}
local hover = nil
for _, a in pairs(answers) do
  if a.result then hover = a.result.contents.value end
end
local f = io.open(out, "w")
f:write(vim.fn.json_encode({ diagnostics = diags, hover = hover }))
f:close()
vim.lsp.stop_client(id)
vim.cmd("qa!")
"""


def test_neovim_shows_netevo_diagnostics_and_hover(tmp_path):
    spec = tmp_path / "broken.net"
    spec.write_text("network n {\n  input x: [B, 3]\n  h = conv1d(x, out=4, k=3)\n  output y = linear(q, out=2)\n}\n")
    out, script = tmp_path / "out.json", tmp_path / "drive.lua"
    script.write_text(LUA)
    root = Path(__file__).resolve().parents[2]
    setup = (f"lua _G.NETEVO_SPEC={json.dumps(str(spec))} _G.NETEVO_OUT={json.dumps(str(out))} "
             f"_G.NETEVO_PYTHON={json.dumps(sys.executable)}")
    subprocess.run([NVIM, "--headless", "-u", "NONE", "-i", "NONE", "-c", setup, "-c", f"luafile {script}"],
                   cwd=root, timeout=180, check=True, capture_output=True)
    result = json.loads(out.read_text())
    codes = sorted(d["code"] for d in result["diagnostics"])
    assert "E020" in codes  # `q` is unknown
    unknown = next(d for d in result["diagnostics"] if d["code"] == "E020")
    assert unknown["lnum"] == 3 and unknown["source"] == "netevo" and "`q`" in unknown["message"]
    assert result["hover"] and "conv1d(" in result["hover"]  # the registry's signature, through Neovim
