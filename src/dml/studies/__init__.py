"""Studies that run several trainings and judge them: AutoLR's premise on any data
(premise), the synthetic twin's check (twin), the AutoLR comparison (compare_autolr) and the
layer-wise LR baselines beside AutoLR (layerwise)."""
