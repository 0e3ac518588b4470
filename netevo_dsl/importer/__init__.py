"""Import a PyTorch `nn.Module` as a `.net` spec (torch.fx): `from_module`, and `netevo import` (`cli.py`).

Which PyTorch calls become which op is declared by each op (`OpDef.torch_import` in `ops/`); this
package traces, names and writes. See docs/import.md.
"""
from .fx_import import from_module, import_text

__all__ = ["from_module", "import_text"]
