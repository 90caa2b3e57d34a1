"""Diagnostics of trained runs: what the network looks at (Grad-CAM of every unit)."""
