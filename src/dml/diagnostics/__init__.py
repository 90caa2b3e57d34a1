"""Diagnostics of trained runs, read from their run folders: Grad-CAM per unit (cam) and the
γ ratio of supplement Table 1 (gamma, its command line gamma_cli)."""
