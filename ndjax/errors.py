"""The library's errors: one base, `NdjaxError`, for every error ndjax raises about its inputs.

Scripts catch `NdjaxError` and print its one-line message; every other exception (a NumPy, JAX or orbax bug)
keeps its traceback. `NdjaxError` is a `ValueError`, so code that caught `ValueError` before still does.
"""

from __future__ import annotations


class NdjaxError(ValueError):
    """An input ndjax cannot use (a value, a file, a folder, a broker's answer); the message names it."""


class ConfigError(NdjaxError):
    """A configuration value that breaks a rule (market rules, training configuration, flags); names the field."""


def one_line(prog: str, error: NdjaxError) -> str:
    """`prog: message` on one line (whitespace runs collapsed), for a script's exit message."""
    return f"{prog}: " + " ".join(str(error).split())
