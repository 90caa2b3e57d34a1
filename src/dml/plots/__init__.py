"""Figures of runs and data: AutoLR diagnostics, LR schedules, alpha x beta, retrievals, samples."""
