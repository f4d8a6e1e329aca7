"""The one exception type commands raise for user mistakes (kept apart from ``cli`` so
that ``python -m cnn_ip.cli`` and the console script share the same class)."""


class UserError(Exception):
    """A mistake in what the user gave us; printed as one line, exit status 2."""
