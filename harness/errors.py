"""Errors the user is meant to read. The CLI prints them without a traceback."""

from __future__ import annotations

from collections.abc import Iterator


class HarnessError(Exception):
    """Base of every error the CLI reports as a one-line message."""


class UnknownNameError(HarnessError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConfigError(HarnessError, ValueError):
    """A configuration that cannot run; the message says what to change.

    Here rather than in :mod:`harness.config` so that modules ``config`` imports
    (the setting declarations, the plugin option types) can raise it without an
    import circle; ``harness.config.ConfigError`` is the same class.
    """


class PluginError(HarnessError):
    """A plugin failed to import, clashed with another, or broke its contract."""


class DatasetError(HarnessError):
    """A dataset folder is missing or does not match its layout."""


class BadImageError(DatasetError):
    """An image file cannot be decoded; the message names the file."""


class NumericalError(HarnessError):
    """A loss became NaN or inf."""


class DiskFullError(HarnessError):
    """The disk filled while writing a file; nothing already written was replaced."""


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or during (``__cause__``, else
    ``__context__``), each once: where torch buries an OS or allocator error under its own."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
