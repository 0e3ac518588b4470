"""Mutation validation runs a network at the smallest sizes its symbolic shapes allow (issue 18, item 6).

The expected sizes come from outside the shape rules: PyTorch's own convolution (which refuses an input
smaller than its kernel) and ResNet's output stride of 32 (He et al. 2016, Table 1: conv1, the max pool
and conv3_x to conv5_x each halve the image, and the spec writes those sizes as H / 2 ... H / 32).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import netevo_dsl as ne
from netevo_dsl.evolve.mutations import validate_source
from netevo_dsl.evolve.mutations.validate import smallest_sizes
from netevo_dsl.passes.check import check

SPECS = Path(__file__).resolve().parents[2] / "specs"

VALID_CONV = """
network n {
  input img: [B, 1, H, W]
  output y = img |> conv2d(out=4, k=5) |> relu()
}
"""


def test_an_unpadded_convolution_needs_an_input_at_least_its_kernel():
    sizes = smallest_sizes(check(ne.parse(VALID_CONV)).graphs["n"])
    assert sizes == {"B": 1, "H": 8, "W": 8}  # the least power of two >= the kernel (5)
    weight = torch.zeros(4, 1, 5, 5)
    with pytest.raises(RuntimeError):  # PyTorch itself: a 4x4 image is smaller than the 5x5 kernel
        torch.nn.functional.conv2d(torch.zeros(1, 1, 4, 4), weight)
    assert torch.nn.functional.conv2d(torch.zeros(1, 1, 8, 8), weight).shape == (1, 4, 4, 4)
    validate_source(ne.parse(VALID_CONV))


def test_resnet18_is_validated_at_its_output_stride():
    spec = ne.load(SPECS / "resnet18.net")
    assert smallest_sizes(check(spec).graphs["resnet18"]) == {"B": 1, "H": 32, "W": 32}
    validate_source(spec)


def test_a_network_of_fixed_sizes_only_shrinks_the_batch():
    spec = ne.load(SPECS / "digits_cnn.net")
    assert smallest_sizes(check(spec).graphs["digits_cnn"]) == {"B": 1}
    validate_source(spec)
