"""hfmatrix: a test matrix for Hugging Face transformers models, organised by architecture class."""

__version__ = "0.1.0"
