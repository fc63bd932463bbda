"""Side-by-side ANN retrieval benchmark: ``python -m bench.ann.run``."""
