"""Server-rendered pages (filled in below)."""


def add_pages(app) -> None:
    """Mount the web pages on ``app``."""
