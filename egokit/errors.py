"""User-facing exceptions.

Anything derived from :class:`EgokitError` is a problem with the user's input (a missing file, a bad checkpoint,
a malformed annotation); the CLI prints its message as one clear line instead of a traceback.
"""

from __future__ import annotations


class EgokitError(Exception):
    """Base class for errors caused by user input rather than by a bug in egokit."""


class ConfigError(EgokitError):
    """A recipe, override or model configuration is invalid."""


class CheckpointError(EgokitError):
    """A checkpoint cannot be read or does not fit the model."""


class DataError(EgokitError):
    """An annotation or video file is missing or malformed; the message names the file and field."""


class VideoDecodeError(DataError):
    """A video could not be decoded for the requested time range."""


class PluginError(EgokitError):
    """A task plugin failed to import or declares an invalid task."""
