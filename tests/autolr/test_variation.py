"""Weight variation (paper Eq. 1, spec section 3) on a tiny backbone with hand-set weights.

v_k = ||W_end - W_start||_2 / n_k, where W is unit k's main-path conv weights joined into
one vector and n_k is their total element count (BN and shortcut weights left out).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from dml.autolr.variation import snapshot_main_path, weight_variation
from dml.models import Backbone, UnitMap
from dml.models.units import resnet_main_path


def two_unit_backbone() -> Backbone:
    """Unit 1: BasicBlock(2 -> 4) with a 1x1 shortcut; unit 2: Bottleneck(4, planes=1).

    Main-path element counts, by hand:
      unit 1: conv1 4x2x3x3 = 72, conv2 4x4x3x3 = 144            -> n_1 = 216
      unit 2: conv1 1x4x1x1 = 4, conv2 1x1x3x3 = 9, conv3 4x1x1x1 = 4 -> n_2 = 17
    """
    torch.manual_seed(0)
    stem = nn.Conv2d(3, 2, 3, padding=1, bias=False)
    shortcut = nn.Sequential(nn.Conv2d(2, 4, 1, bias=False), nn.BatchNorm2d(4))
    blocks = [BasicBlock(2, 4, downsample=shortcut), Bottleneck(4, 1)]
    return Backbone(UnitMap(stem, blocks, [resnet_main_path(b) for b in blocks]))


def test_main_path_element_counts() -> None:
    """Catches a main path that includes BN or shortcut weights (n_1 would exceed 216)."""
    bb = two_unit_backbone()
    # 72 + 144 = 216 and 4 + 9 + 4 = 17 (see two_unit_backbone)
    assert [sum(p.numel() for p in bb.main_path_params(k)) for k in range(2)] == [216, 17]


def test_variation_hand_values() -> None:
    """Catches dividing by sqrt(n) or per-tensor counts, summing per-tensor norms instead of
    joining the tensors into one vector, and counting BN / shortcut weights."""
    bb = two_unit_backbone()
    u1, u2 = bb.units
    with torch.no_grad():
        for k in range(2):
            for p in bb.main_path_params(k):
                p.fill_(0.25)  # exact in float32, so +3 / -4 / +2 / +1 below are exact too
    start = snapshot_main_path(bb)
    with torch.no_grad():
        # unit 1: one entry of conv1 +3, one of conv2 -4 -> ||dW|| = sqrt(9 + 16) = 5
        u1.conv1.weight[0, 0, 0, 0] += 3.0
        u1.conv2.weight[1, 2, 2, 1] -= 4.0
        # noise off the main path: must not count
        u1.bn1.weight += 100.0
        u1.downsample[0].weight += 100.0
        # unit 2: all 4 conv1 entries +2 (4 * 4 = 16), all 9 conv2 entries +1 (9)
        #         -> ||dW|| = sqrt(16 + 9) = 5
        u2.conv1.weight += 2.0
        u2.conv2.weight += 1.0
        u2.bn3.bias -= 50.0
    v = weight_variation(bb, start)
    # v_1 = 5 / 216 = 0.023148148..., v_2 = 5 / 17 = 0.294117647...
    assert v == pytest.approx([0.0231481481481, 0.2941176470588], rel=1e-12)


def test_snapshot_is_a_copy_not_a_view() -> None:
    """Catches a snapshot that aliases the live weights: an in-place optimizer step would move
    the snapshot too, and every variation would read 0."""
    bb = two_unit_backbone()
    start = snapshot_main_path(bb)
    with torch.no_grad():
        bb.units[1].conv3.weight.mul_(0.0).add_(1.0)  # in place, like SGD.step
    before = start[1][2]
    assert not torch.equal(before, bb.units[1].conv3.weight)
    assert weight_variation(bb, start)[0] == 0.0
    assert weight_variation(bb, start)[1] > 0.0


def test_no_change_gives_zero_and_stem_is_ignored() -> None:
    """Catches the stem being counted as part of unit 1 (its change would give v_1 > 0)."""
    bb = two_unit_backbone()
    start = snapshot_main_path(bb)
    with torch.no_grad():
        bb.stem.weight += 10.0
    assert weight_variation(bb, start) == [0.0, 0.0]
