"""Front-end passes over the spec IR: elaborate (resolve + infer_shapes) and check."""
