"""The one exception type the command line turns into a clean message and exit code 2."""


class KitError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


def os_error_message(error: OSError) -> str:
    """One line for an error of the file system (a full disk, a read-only or missing folder)."""
    where = f" {error.filename}" if error.filename else ""
    return f"cannot use{where}: {error.strerror or error}"
