"""The IR: spec nodes (frozen attrs), symbolic dims, the elaborated graph, the printer. Pure Python."""
