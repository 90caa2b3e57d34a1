"""User-facing errors: reported as one line, never as a traceback."""


class DmlError(Exception):
    """A mistake in the user's input (config, paths, data) with a one-line explanation."""


class InfeasibleError(DmlError):
    """The requested configuration cannot be trained (e.g. AutoLR alpha/beta bounds cross)."""


class DivergedError(DmlError):
    """Training produced a non-finite loss."""
