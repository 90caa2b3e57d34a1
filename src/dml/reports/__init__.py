"""Tables of finished runs: sweeps aggregated (aggregate) and set against the paper (tables)."""
