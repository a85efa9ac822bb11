"""Errors caused by the user's input. Entry points print these without a traceback."""


class UserError(Exception):
    """Base class: a message that names the file / option / value and what was expected."""


class OptionError(UserError, ValueError):
    """Invalid option file, option key or value."""


class DataError(UserError, ValueError):
    """A dataset folder, file or pairing that cannot be used."""


class ImageReadError(DataError):
    """A file that is missing, unreadable or not a decodable image."""


class TrainingError(UserError):
    """Training cannot go on (non-finite loss, lost distributed peer); the message says why and
    where the last good checkpoint is."""
