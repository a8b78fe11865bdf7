"""poster-genre-kit: a competition kit for multi-label film genre prediction from posters."""

__version__ = "0.1.0"
