"""Exceptions raised by rank-engine besides the built-in ValueError / TypeError."""


class CorruptFileError(ValueError):
    """A stored file is truncated, corrupt, of another format or version.

    The message starts with the file's path and says what failed to validate.
    """


class BundleError(ValueError):
    """A serving bundle is missing an artefact, has a corrupt or changed one, or
    its parts do not fit together. The message names the bundle and the part."""
