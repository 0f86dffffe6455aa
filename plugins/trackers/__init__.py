"""Built-in experiment trackers (``--tracker``): TensorBoard and MLflow, both local."""
