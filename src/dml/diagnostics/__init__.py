"""Diagnostics of trained runs, read from their run folders (e.g. cam: Grad-CAM per unit)."""
