"""Progress bars (tqdm), or nothing when switched off."""
from __future__ import annotations


class NoBar:
    """The bar's interface, doing nothing: for --no-progress and tests."""

    def update(self, n=1):
        pass

    def set_postfix_str(self, s):
        pass

    def close(self):
        pass


def progress_bar(total: int, enabled: bool = True, unit: str = "it", desc: str = "", initial: int = 0):
    if not enabled:
        return NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True)
