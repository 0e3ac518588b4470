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


class PhaseBar:
    """A bar over named phases: `bar("ablation")` marks the running phase done and shows the next one.

    Pass an instance as the `progress` callback of `analysis.analyze` and friends."""

    def __init__(self, total: int, enabled: bool = True, desc: str = ""):
        self.bar = progress_bar(total, enabled, unit="step", desc=desc)
        self.running = False

    def __call__(self, phase: str) -> None:
        if self.running:
            self.bar.update(1)
        self.running = True
        self.bar.set_postfix_str(phase)

    def prefix(self, label: str):
        """The same bar, with every phase shown as `label: phase`."""
        return lambda phase: self(f"{label}: {phase}")

    def close(self) -> None:
        if self.running:
            self.bar.update(1)
            self.running = False
        self.bar.close()
