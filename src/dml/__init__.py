"""dml: deep metric learning with layer-wise pruning and AutoLR."""
