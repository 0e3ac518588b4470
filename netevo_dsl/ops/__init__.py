"""The op registry (one module per op family), activations, masks, mutation rules and task declarations."""
