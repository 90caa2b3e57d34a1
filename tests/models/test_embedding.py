"""EmbeddingNet heads (linear, the paper's bottleneck) and frozen backbone BatchNorm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dml.errors import DmlError
from dml.models import EmbeddingNet
from dml.models.embedding import paper_head
from tests.conftest import tiny_backbone


def _net(head: str = "paper", freeze_bn: bool = False, dim: int = 6) -> EmbeddingNet:
    torch.manual_seed(0)
    return EmbeddingNet(tiny_backbone(width=8, units=2), dim, head=head, freeze_bn=freeze_bn)


def test_head_layers_and_output_shapes():
    """Bug: head=paper missing a layer, reordered, or with the wrong slope/dropout rate."""
    linear, paper = _net("linear"), _net("paper")
    assert isinstance(linear.head, nn.Linear) and linear.head.weight.shape == (6, 8)
    kinds = [type(m) for m in paper.head]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.LeakyReLU, nn.Dropout]
    assert paper.head[0].weight.shape == (6, 8) and paper.head[1].num_features == 6
    assert paper.head[2].negative_slope == 0.1 and paper.head[3].p == 0.5
    x = torch.randn(4, 3, 8, 8)
    assert linear(x).shape == (4, 6) and paper.eval()(x).shape == (4, 6)


def test_paper_head_init():
    """Bug: default (uniform) init on the bottleneck or a non-identity BN at the start.

    Kaiming normal, fan_out, gain sqrt(2): std = sqrt(2 / 512) = 0.0625 for a 512x2048 weight.
    """
    torch.manual_seed(0)
    backbone = tiny_backbone(width=8, units=1)
    net = EmbeddingNet(backbone, 6, head="paper")
    lin, bn = net.head[0], net.head[1]
    assert torch.equal(lin.bias, torch.zeros(6))
    assert torch.equal(bn.weight, torch.ones(6)) and torch.equal(bn.bias, torch.zeros(6))
    big = paper_head(2048, 512)[0].weight
    assert abs(big.std().item() - 0.0625) < 0.001 and abs(big.mean().item()) < 0.001


def test_dropout_only_in_train_mode():
    """Bug: Dropout(0.5) left active at eval (noisy test embeddings) or never active in training.

    In train mode about half the outputs are zeroed and the kept ones doubled; in eval mode
    the same input gives the same output twice, with no zeros from dropout.
    """
    net = _net("paper", dim=256)
    drop = net.head[3]
    ones = torch.ones(64, 256)
    drop.train()
    out = drop(ones)
    zero_share = (out == 0).float().mean().item()
    assert 0.45 < zero_share < 0.55 and set(out.unique().tolist()) == {0.0, 2.0}
    net.eval()
    x = torch.randn(3, 3, 8, 8)
    assert torch.equal(net(x), net(x))
    assert torch.equal(drop(ones), ones)


def test_leaky_relu_slope_on_a_hand_made_input():
    """Bug: plain ReLU (slope 0) or LeakyReLU's default 0.01 instead of the paper's 0.1.

    BN in eval mode with fresh stats (mean 0, var 1, eps 1e-5) divides by sqrt(1 + 1e-5);
    Linear set to the identity with zero bias, so input [-2, 3] -> [-0.2, 3] / 1.000005.
    """
    torch.manual_seed(0)
    head = EmbeddingNet(tiny_backbone(width=2, units=1), 2, head="paper").head.eval()
    with torch.no_grad():
        head[0].weight.copy_(torch.eye(2))
    out = head(torch.tensor([[-2.0, 3.0]]))
    scale = 1 / (1 + 1e-5) ** 0.5
    assert torch.allclose(out, torch.tensor([[-0.2 * scale, 3.0 * scale]]), atol=1e-7)


def test_freeze_bn_keeps_running_stats_and_params_fixed():
    """Bug: freeze_bn=True still updating BN running stats in train mode, or training gamma/beta.

    A fresh BatchNorm2d has running_mean 0 and running_var 1; a train-mode forward on inputs
    with mean 5 would move them (momentum 0.1) unless the layer is kept in eval mode.
    """
    net = _net("linear", freeze_bn=True).train()
    bns = [m for m in net.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 5  # stem + 2 per BasicBlock
    assert net.training and net.head.training and not any(bn.training for bn in bns)
    net(torch.randn(4, 3, 8, 8) + 5).sum().backward()
    for bn in bns:
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
        assert not bn.weight.requires_grad and bn.weight.grad is None and bn.bias.grad is None
    assert net.head.weight.grad is not None
    assert net.backbone.stem[0].weight.grad is not None  # convs still train
    net.eval().train()  # a later train() call must not thaw them
    assert not any(bn.training for bn in bns)


def test_without_freeze_bn_running_stats_move():
    """Bug: BN frozen regardless of freeze_bn (the default must keep training BN).

    Stem BN after a train-mode forward: running_mean = 0.9 * 0 + 0.1 * batch mean != 0.
    """
    net = _net("linear", freeze_bn=False).train()
    bn = net.backbone.stem[1]
    net(torch.randn(4, 3, 8, 8) + 5)
    assert bn.training and bn.weight.requires_grad
    assert bn.running_mean.abs().max() > 0


def test_unknown_head_is_refused():
    """Bug: a misspelt head silently falling back to linear."""
    with pytest.raises(DmlError, match=r"model.head='mlp'.*\['linear', 'paper'\]"):
        _net("mlp")


def test_token_pooling_takes_the_class_token_or_averages_the_patches():
    """Catches the class token averaged in with the patches, or cls accepted on a ResNet
    (which has no class token: it would pool the first row of the feature map)."""
    from dml.models import build_torchvision, make_backbone

    backbone = make_backbone(build_torchvision("vit_tiny", 2, image_size=32))
    tokens = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [3.0, 6.0]]])  # class token, 2 patches
    cls = EmbeddingNet(backbone, 4, pooling="cls")
    assert cls.pool(tokens).tolist() == [[9.0, 9.0]]
    avg = EmbeddingNet(backbone, 4, pooling="avg")
    assert avg.pool(tokens).tolist() == [[2.0, 4.0]]
    with pytest.raises(DmlError, match="model.pooling='cls' needs a ViT backbone"):
        EmbeddingNet(tiny_backbone(), 4, pooling="cls")
