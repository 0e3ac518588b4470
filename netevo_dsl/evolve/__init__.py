"""The mutation engine: dependency groups and function-preserving transforms on (spec, weights)."""
