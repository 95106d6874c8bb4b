"""Capture backends other than plain PyTorch hooks: nnsight and TransformerLens, for cross-checks."""
