"""Every exception class of the package, and the helpers that word errors (did-you-mean, first
line). Errors caused by the user's input derive from UserError: entry points print these without
a traceback. The bottom layer: imports nothing of the package."""
from __future__ import annotations

import contextlib
import difflib
from typing import Any, Iterable, Iterator

import yaml


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


class RegistryError(UserError, KeyError):
    """A name that is not registered (the message lists what exists)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class CheckpointError(UserError):
    """A checkpoint that cannot be read safely or does not contain what is needed."""


class NiqeParamsMissing(UserError, FileNotFoundError):
    """The pristine model file is not where NIQE looks: a user error (one message, exit 2, found
    at start-up by check_metrics), still a FileNotFoundError for code that catches that."""


class DuplicateKeyError(yaml.YAMLError):
    """A mapping of an option file names the same key twice."""

    def __init__(self, key: Any, first_line: int, second_line: int) -> None:
        super().__init__(f'duplicate key {key!r} at lines {first_line} and {second_line}')
        self.key, self.first_line, self.second_line = key, first_line, second_line


def closest_match(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name`` (difflib, cutoff 0.5), or None: the one did-you-mean
    rule of every message in the package."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return close[0] if close else None


def did_you_mean(key: str, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the option closest to ``key``, or ``''``."""
    close = closest_match(key, options)
    return f"; did you mean '{close}'?" if close is not None else ''


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
