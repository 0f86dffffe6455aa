"""An out-of-tree plugin for crossres-harness: RRDB generator, tiny CNN re-id, perceptual-id."""

__version__ = "0.1.0"
