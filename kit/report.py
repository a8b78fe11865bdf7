"""The data report of a prepared dataset: label distribution and genres per film."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from kit import plots
from kit.console import console, table

DOMINANT_GENRE = "Drama"


def genre_counts(genres: pd.Series) -> dict[str, int]:
    """Films per genre from a series of ``|``-joined genre strings, most common first."""
    counts = Counter(g for text in genres for g in text.split("|") if g)
    return dict(counts.most_common())


def genres_per_film_groups(genres: pd.Series, dominant: str = DOMINANT_GENRE) -> dict[str, list]:
    """Genres-per-film values for films with the dominant genre and for the others."""
    lists = [text.split("|") for text in genres]
    return {f"with {dominant}": [len(g) for g in lists if dominant in g],
            f"without {dominant}": [len(g) for g in lists if dominant not in g]}


def write_data_report(films: pd.DataFrame, out_dir: str | Path, title: str) -> dict:
    """Draw Figures 1 and 3 for ``films`` (column genres) into ``out_dir`` and print the counts."""
    out_dir = Path(out_dir)
    counts = genre_counts(films["genres"])
    groups = genres_per_film_groups(films["genres"])
    figure1 = plots.label_distribution({"films": counts}, f"{title}: films per genre",
                                       out_dir / "label_distribution.png")
    figure3 = plots.genres_per_film(groups, f"{title}: genres per film",
                                    out_dir / "genres_per_film.png")
    total = len(films)
    console.print(table(f"{title}: {total} films", ["genre", "films", "share"],
                        ((g, n, n / total) for g, n in counts.items())))
    return {"films": total, "genre_counts": counts,
            "mean_genres_per_film": {k: round(sum(v) / len(v), 3) if v else None
                                     for k, v in groups.items()},
            "figures": [str(figure1), str(figure3)]}
