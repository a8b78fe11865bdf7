"""Synthetic posters in the Letterboxd layout: the kit's embedded default data.

Assumptions (documented in README, "Synthetic default data"):
- Labels: Letterboxd's 19 TMDB genres. A film draws a primary genre from a drama-dominant,
  long-tailed prior (``PRIMARY_WEIGHTS``), then 0 to 3 further genres. Each further genre is Drama
  with probability ``DRAMA_ADD_ON`` (drama is the usual companion genre), otherwise one of the
  primary genre's typical companions (``COMPANIONS``). Films with Drama draw more genres
  (``GENRE_COUNT_DRAMA``) than the others (``GENRE_COUNT_OTHER``), as on Letterboxd.
- Images: 230x345 JPEG. Each genre owns a hue, a shape kind and a layout band. A poster's background
  mixes its genres' hues; each of its genres is drawn as shapes with probability ``CUE_RATE``; a
  distractor genre's shapes appear with probability ``DISTRACTOR_RATE``; title-like text blocks,
  colour jitter and pixel noise are added to every poster. The signal is learnable but noisy.
- Deterministic for a seed: every film draws from its own generator seeded by (seed, index).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from kit.console import track
from kit.errors import KitError
from kit.files import atomic_path, write_csv
from kit.scheduler import run_jobs

GENRES = ["Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama", "Family",
          "Fantasy", "History", "Horror", "Music", "Mystery", "Romance", "Science Fiction",
          "TV Movie", "Thriller", "War", "Western"]

PRIMARY_WEIGHTS = {
    "Drama": 30, "Comedy": 17, "Documentary": 11, "Horror": 7, "Thriller": 5, "Action": 5,
    "Romance": 4, "Animation": 4, "Crime": 3, "Music": 3, "Science Fiction": 2, "Family": 2,
    "Adventure": 1.5, "Fantasy": 1.5, "Mystery": 1.2, "TV Movie": 1.5, "History": 1, "War": 0.7,
    "Western": 0.6,
}
COMPANIONS = {
    "Action": ["Adventure", "Thriller", "Crime", "Science Fiction", "War"],
    "Adventure": ["Action", "Fantasy", "Family", "Science Fiction", "Western"],
    "Animation": ["Family", "Comedy", "Fantasy", "Adventure"],
    "Comedy": ["Romance", "Family", "Crime", "Music", "TV Movie"],
    "Crime": ["Thriller", "Mystery", "Action"],
    "Documentary": ["Music", "History", "War", "TV Movie"],
    "Drama": ["Romance", "Crime", "History", "Comedy", "Thriller", "War", "Music", "Family"],
    "Family": ["Animation", "Comedy", "Adventure", "Fantasy", "TV Movie"],
    "Fantasy": ["Adventure", "Family", "Horror", "Animation"],
    "History": ["War", "Documentary", "Romance"],
    "Horror": ["Thriller", "Mystery", "Fantasy", "Science Fiction"],
    "Music": ["Documentary", "Comedy", "Romance"],
    "Mystery": ["Thriller", "Crime", "Horror"],
    "Romance": ["Comedy", "Music", "History"],
    "Science Fiction": ["Action", "Adventure", "Horror", "Thriller"],
    "TV Movie": ["Family", "Comedy", "Romance", "Documentary"],
    "Thriller": ["Crime", "Mystery", "Horror", "Action"],
    "War": ["History", "Action", "Documentary"],
    "Western": ["Action", "Adventure", "History"],
}
DRAMA_ADD_ON = 0.45
GENRE_COUNT_DRAMA = [0.38, 0.34, 0.20, 0.08]   # P(1..4 genres) for films with Drama
GENRE_COUNT_OTHER = [0.58, 0.28, 0.11, 0.03]   # ... and for the others
CUE_RATE = 0.8
DISTRACTOR_RATE = 0.3
WIDTH, HEIGHT = 230, 345
FIRST_ID = 1_000_001
FILMS_PER_JOB = 64        # a job writes this many posters: few jobs, each worth a process hop
SHAPES = ["circle", "triangle", "bar", "box", "ring", "diamond", "cross"]
WORDS = ["night", "last", "city", "love", "dark", "summer", "return", "house", "blood", "star",
         "river", "king", "ghost", "road", "little", "secret", "war", "dream", "wild", "lost"]


def genre_style(index: int) -> dict:
    """Fixed visual identity of the genre at ``index``: hue, shape kind and vertical band."""
    return {
        "hue": (index * 137.508) % 360,
        "shape": SHAPES[index % len(SHAPES)],
        "band": (index * 5 % 19) / 19,
        "size": 14 + (index * 7) % 26,
    }


STYLES = {genre: genre_style(i) for i, genre in enumerate(GENRES)}


def draw_labels(rng: np.random.Generator) -> list[str]:
    """Draw one film's genres (1 to 4, drama-heavy, with realistic companions)."""
    names = list(PRIMARY_WEIGHTS)
    weights = np.array(list(PRIMARY_WEIGHTS.values()), dtype=float)
    primary = names[rng.choice(len(names), p=weights / weights.sum())]
    genres = [primary]
    # Whether Drama will be present decides the genre-count distribution.
    will_have_drama = primary == "Drama" or rng.random() < 0.3
    counts = GENRE_COUNT_DRAMA if will_have_drama else GENRE_COUNT_OTHER
    total = 1 + rng.choice(4, p=counts)
    if will_have_drama and "Drama" not in genres and total > 1:
        genres.append("Drama")
    while len(genres) < total:
        if "Drama" not in genres and rng.random() < DRAMA_ADD_ON and will_have_drama:
            candidate = "Drama"
        else:
            pool = [g for g in COMPANIONS[genres[rng.integers(len(genres))]] if g not in genres]
            if not pool:
                break
            candidate = pool[rng.integers(len(pool))]
        genres.append(candidate)
    return sorted(set(genres))


def _hsv(hue: float, sat: float, val: float) -> tuple[int, int, int]:
    import colorsys
    r, g, b = colorsys.hsv_to_rgb((hue % 360) / 360, min(max(sat, 0), 1), min(max(val, 0), 1))
    return int(r * 255), int(g * 255), int(b * 255)


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, x: float, y: float, r: float, colour) -> None:
    box = [x - r, y - r, x + r, y + r]
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "ring":
        draw.ellipse(box, outline=colour, width=max(2, int(r / 4)))
    elif kind == "triangle":
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
    elif kind == "diamond":
        draw.polygon([(x, y - r), (x - r, y), (x, y + r), (x + r, y)], fill=colour)
    elif kind == "bar":
        draw.rectangle([x - 2 * r, y - r / 4, x + 2 * r, y + r / 4], fill=colour)
    elif kind == "cross":
        draw.rectangle([x - r, y - r / 4, x + r, y + r / 4], fill=colour)
        draw.rectangle([x - r / 4, y - r, x + r / 4, y + r], fill=colour)
    else:
        draw.rectangle(box, fill=colour)


def render_poster(genres: list[str], rng: np.random.Generator) -> Image.Image:
    """Render one 230x345 poster whose palette and shapes carry a noisy signal of ``genres``."""
    hues = [STYLES[g]["hue"] + rng.normal(0, 12) for g in genres]
    top = np.array(_hsv(hues[0], 0.55 + rng.normal(0, 0.1), 0.5 + rng.normal(0, 0.15)), float)
    bottom = np.array(_hsv(hues[-1], 0.6 + rng.normal(0, 0.1), 0.25 + rng.normal(0, 0.1)), float)
    ramp = np.linspace(0, 1, HEIGHT)[:, None, None]
    canvas = (top * (1 - ramp) + bottom * ramp) * np.ones((1, WIDTH, 1))
    image = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    shown = [g for g in genres if rng.random() < CUE_RATE]
    if rng.random() < DISTRACTOR_RATE:
        shown.append(GENRES[rng.integers(len(GENRES))])
    for genre in shown:
        style = STYLES[genre]
        colour = _hsv(style["hue"] + rng.normal(0, 15), 0.8, 0.6 + rng.random() * 0.4)
        for _ in range(int(rng.integers(1, 4))):
            x = rng.uniform(20, WIDTH - 20)
            y = (style["band"] * 0.8 + 0.1) * HEIGHT + rng.normal(0, 25)
            _draw_shape(draw, style["shape"], x, y, style["size"] * rng.uniform(0.7, 1.3), colour)
    # Title-like text blocks and a credits band: the same for every genre, pure nuisance.
    ink = (235, 235, 235) if rng.random() < 0.7 else (20, 20, 20)
    title_y = rng.uniform(0.05, 0.85) * HEIGHT
    x = rng.uniform(10, 40)
    for _ in range(int(rng.integers(2, 6))):
        width = rng.uniform(12, 40)
        draw.rectangle([x, title_y, x + width, title_y + rng.uniform(8, 16)], fill=ink)
        x += width + 6
        if x > WIDTH - 30:
            break
    draw.rectangle([15, HEIGHT - 22, WIDTH - 15, HEIGHT - 16], fill=(200, 200, 200))
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels * rng.uniform(0.8, 1.2) + rng.normal(0, 18, pixels.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _make_films(job: tuple[int, int, int, str]) -> list[tuple[int, list[str], str, int]]:
    """Films ``start`` to ``stop`` - 1: each one's poster written, its row returned."""
    seed, start, stop, poster_dir = job
    return [_make_film(seed, index, poster_dir) for index in range(start, stop)]


def _make_film(seed: int, index: int, poster_dir: str) -> tuple[int, list[str], str, int]:
    rng = np.random.default_rng([seed, index])
    film_id = FIRST_ID + index
    genres = draw_labels(rng)
    with atomic_path(os.path.join(poster_dir, f"{film_id}.jpg")) as tmp:
        render_poster(genres, rng).save(tmp, format="JPEG", quality=88)
    title = " ".join(WORDS[i] for i in rng.choice(len(WORDS), size=int(rng.integers(1, 4)),
                                                   replace=False)).title()
    return film_id, genres, title, int(rng.integers(1950, 2025))


def synthesize(out: str | os.PathLike, n: int, seed: int = 0, workers: int | None = None,
               force: bool = False) -> dict:
    """Write ``n`` synthetic films to ``out`` in the Letterboxd layout and return a summary.

    A folder that is not empty is refused (a partial overwrite would mix two data sets) unless
    ``force``, which first removes the data set written there before."""
    if n < 1:
        raise KitError(f"--n must be at least 1, got {n}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise KitError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise KitError(f"--out {out} is not empty; choose an empty or new folder, or add "
                           "--force to replace the data set in it")
        shutil.rmtree(out / "posters", ignore_errors=True)
        for name in ("genres.csv", "movies.csv"):
            (out / name).unlink(missing_ok=True)
    poster_dir = out / "posters"
    poster_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, start, min(start + FILMS_PER_JOB, n), str(poster_dir))
            for start in range(0, n, FILMS_PER_JOB)]
    made = run_jobs(_make_films, jobs, workers=workers or min(os.cpu_count() or 1, 8))
    films = sorted(film for batch in track(made, n, "synthesising", "posters", size=len)
                   for film in batch)
    genre_rows = [(film_id, g) for film_id, genres, _, _ in films for g in genres]
    write_csv(out / "genres.csv", pd.DataFrame(genre_rows, columns=["id", "genre"]))
    movies = pd.DataFrame([(film_id, title, year) for film_id, _, title, year in films],
                          columns=["id", "name", "date"])
    write_csv(out / "movies.csv", movies)
    counts = pd.Series([g for _, g in genre_rows]).value_counts()
    return {"out": str(out), "films": n, "seed": seed, "genre_rows": len(genre_rows),
            "genres": int(counts.size), "most_common": counts.index[0],
            "drama_share": round(float(counts.get("Drama", 0)) / n, 3)}
