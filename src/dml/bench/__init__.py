"""Benchmarks and speed checks: evaluation, trainer and AutoLR costs (speed), the GPU check
(gpu) and JPEG decoding (jpeg)."""
