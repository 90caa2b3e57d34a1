"""Tests of dml.diagnostics."""
