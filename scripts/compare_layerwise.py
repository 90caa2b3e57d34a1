"""Layer-wise LR baselines beside AutoLR, on ResNet-18 and ViT-tiny: R@1, wall time, passes.

    python scripts/compare_layerwise.py [--quick] [--seeds 3] [--backbones resnet18 vit_tiny]
        [--methods ...] [--decays 0.5 0.65 0.8 0.9] [--out outputs/compare_layerwise]
        [--json F] [--md F] [--png F] [overrides ...]

Methods: constant, step, llrd, gradual_unfreeze, autorgn, AutoLR rerun and AutoLR probe, each
a train.py run per seed; prints a Markdown table and draws R@1 against wall time. How the
methods are set up and llrd's decay chosen: dml.studies.layerwise.
"""

from dml.studies.layerwise import main

if __name__ == "__main__":
    raise SystemExit(main())
