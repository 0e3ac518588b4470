import glob
import os

import pytest

SPECS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "specs")


def spec_paths():
    return sorted(glob.glob(os.path.join(SPECS_DIR, "*.net")))


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
