"""Errors caused by the user's input. Entry points print these without a traceback."""
from __future__ import annotations

import contextlib
from typing import Iterator


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


def first_line(err: BaseException, empty: str = '(no message)') -> str:
    """``Type: first line of the message`` (``empty`` stands in for a message-less error)."""
    lines = str(err).strip().splitlines()
    return f'{type(err).__name__}: {lines[0] if lines else empty}'


# What a constructor raises for an argument value it does not accept.
REJECTED_VALUE_ERRORS = (ValueError, TypeError, AssertionError, NotImplementedError, KeyError,
                         RuntimeError)


@contextlib.contextmanager
def rejected_options(what: str) -> Iterator[None]:
    """Build something from the user's options: an error its constructor raises for a value it
    does not accept becomes an OptionError naming ``what`` (e.g. ``network_g (MSRResNet)``)
    instead of a traceback. Only for constructors: they run on the user's values, on the CPU."""
    try:
        yield
    except UserError:
        raise
    except REJECTED_VALUE_ERRORS as err:
        raise OptionError(f'{what} rejected its options: '
                          f"{first_line(err, empty='an invalid value (no message)')}") from err
