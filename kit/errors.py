"""The one exception type the command line turns into a clean message and exit code 2."""


class KitError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


def os_error_message(error: OSError) -> str:
    """One line for an error of the file system (a full disk, a read-only or missing folder)."""
    where = f" {error.filename}" if error.filename else ""
    return f"cannot use{where}: {error.strerror or error}"


def visible(text: str) -> str:
    """``text`` with every character that does not print (control and format characters, other
    spaces than the plain one) written as its Python escape: quoted data shows what it holds
    and cannot drive the terminal (``\\x1b[2J``) or hide itself (``id\\u200b``)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace")
                   .decode("ascii") for c in text)
