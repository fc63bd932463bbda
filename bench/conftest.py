"""bench/ is not in the default test run (pyproject testpaths = tests/); see bench/README.md."""

# faiss must be loaded before engine (which loads usearch): usearch's extension
# carries a statically linked libstdc++ that breaks faiss.index_factory otherwise.
try:
    import faiss  # noqa: F401
except ImportError:
    pass
