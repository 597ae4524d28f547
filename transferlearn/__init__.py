"""transferlearn: train, compare, evaluate and export image classifiers by transfer learning."""
__version__ = "0.1.0"
