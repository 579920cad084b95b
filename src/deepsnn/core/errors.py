"""Errors a user can fix (bad params, bad data, a model that cannot convert): stages report
them as one clear line instead of a traceback."""


class UserError(Exception):
    """Base class of errors reported without a traceback."""


class ConversionError(UserError, ValueError):
    """A model or thresholds file that cannot be converted as asked."""
