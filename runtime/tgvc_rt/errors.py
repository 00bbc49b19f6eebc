"""User-facing errors. The CLI prints ``str(err)`` on one line and exits non-zero."""


class TgvcError(Exception):
    """Base of every error a user can cause (bad input, bad flags, missing files)."""


class InputError(TgvcError):
    """A file is missing, unreadable or of an unsupported format."""


class BitstreamError(TgvcError):
    """A .tgv stream is truncated, corrupted, of another version or exceeds a cap."""


class ModelSetError(TgvcError):
    """The model set is missing, damaged, or not the one a bitstream was made for."""


class OptionError(TgvcError):
    """A flag or option value is out of range."""
