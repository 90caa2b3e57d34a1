"""Studies that run several trainings and judge them: AutoLR's premise on any data
(premise), the synthetic twin's check (twin) and the AutoLR comparison (compare_autolr)."""
