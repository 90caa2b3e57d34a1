"""Benchmarks and speed checks: the GPU check (gpu) and JPEG decoding (jpeg)."""
