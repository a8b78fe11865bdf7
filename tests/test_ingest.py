import os
import shutil
import threading

import pandas as pd
import pytest

from kit.errors import KitError
from kit.ingest import build_catalogue, find_source
from kit.label_file import SCHEMA_ROWS, parse_genre_list
from tests.conftest import jpeg_bytes


def catalogue_of(root, **options):
    catalogue = build_catalogue(find_source(root, **options))
    return dict(zip(catalogue.films["id"], catalogue.films["genres"])), catalogue


def test_letterboxd_layout_groups_genres_and_keeps_string_ids(letterboxd_dir):
    films, catalogue = catalogue_of(letterboxd_dir)
    assert catalogue.source.layout == "letterboxd"
    assert films == {"tt0086567": "Sci-Fi|Thriller", "tt0086383": "Action", "1000001": "Drama"}
    assert catalogue.dropped["no-poster"] == ["1000002"]
    assert catalogue.dropped["no-genre"] == ["9999999"]


def test_chunked_reading_gives_the_same_table(letterboxd_dir):
    whole = build_catalogue(find_source(letterboxd_dir)).films
    chunked = build_catalogue(find_source(letterboxd_dir), chunksize=1).films
    pd.testing.assert_frame_equal(whole, chunked)


@pytest.mark.parametrize("flag", [int, bool, lambda value: str(bool(value)).upper()])
def test_wide_one_hot_layout(tmp_path, flag):
    """0/1, or the booleans pandas (True/False) and Excel or R (TRUE/FALSE) write: once 'no
    label file found'."""
    (tmp_path / "Images").mkdir()
    genres = {"Action": [0, 1, 1], "Drama": [1, 0, 1], "Science Fiction": [0, 0, 1]}
    pd.DataFrame({"Id": ["tt01", "tt02", "tt03"], "Genre": ["['Drama']", "[]", "x"],
                  **{name: list(map(flag, values)) for name, values in genres.items()}}
                 ).to_csv(tmp_path / "train.csv", index=False)
    for film_id in ["tt01", "tt02", "tt03"]:
        (tmp_path / "Images" / f"{film_id}.jpg").write_bytes(jpeg_bytes())
    films, catalogue = catalogue_of(tmp_path)
    assert catalogue.source.layout == "wide"
    assert films == {"tt01": "Drama", "tt02": "Action", "tt03": "Action|Drama|Science Fiction"}


@pytest.mark.parametrize("genres", ["Drama|Science Fiction", "['Drama', 'Science Fiction']"])
def test_list_layout(tmp_path, genres):
    (tmp_path / "posters").mkdir()
    pd.DataFrame({"id": ["7"], "genres": [genres]}).to_csv(tmp_path / "labels.csv", index=False)
    (tmp_path / "posters" / "7.png").write_bytes(jpeg_bytes(fmt="PNG"))
    films, catalogue = catalogue_of(tmp_path)
    assert catalogue.source.layout == "list"
    assert films == {"7": "Drama|Science Fiction"}


def test_flags_beside_a_genre_list_are_not_genres(tmp_path):
    """TMDB's movies_metadata.csv: the flags adult and video (True/False) beside a genres list
    of {'id', 'name'} dicts; read as a wide file, they would be its only genres."""
    (tmp_path / "posters").mkdir()
    (tmp_path / "posters" / "862.jpg").write_bytes(jpeg_bytes())
    pd.DataFrame({"adult": [False], "genres": ["[{'id': 16, 'name': 'Animation'}, "
                                               "{'id': 35, 'name': 'Comedy'}]"],
                  "id": ["862"], "video": [False]}).to_csv(tmp_path / "movies_metadata.csv",
                                                          index=False)
    films, catalogue = catalogue_of(tmp_path)
    assert catalogue.source.layout == "list" and films == {"862": "Animation|Comedy"}


def test_genre_list_parsing():
    assert parse_genre_list("['Drama', \"Kids, Family\"]") == ["Drama", "Kids, Family"]
    assert parse_genre_list("Drama|Comedy") == ["Drama", "Comedy"]
    assert parse_genre_list("Drama") == ["Drama"]
    assert parse_genre_list("Drama; Comedy") == ["Drama", " Comedy"]    # stripped when read
    assert parse_genre_list("Crime, Noir|Drama") == ["Crime, Noir", "Drama"]
    # TMDB's movies_metadata.csv: once the genre "{'id': 18, 'name': 'Drama'}"
    assert parse_genre_list("[{'id': 18, 'name': 'Drama'}, {'id': 35, 'name': 'Comedy'}]") \
        == ["Drama", "Comedy"]


def test_ids_that_escape_the_poster_folder_are_rejected(letterboxd_dir):
    (letterboxd_dir / "secret.jpg").write_bytes(jpeg_bytes())
    with open(letterboxd_dir / "genres.csv", "a") as handle:
        handle.write("../secret,Drama\n/etc/passwd,Drama\n..,Drama\n")
    films, catalogue = catalogue_of(letterboxd_dir)
    assert sorted(catalogue.dropped["unsafe-id"]) == ["..", "../secret", "/etc/passwd"]
    assert all("/" not in f for f in films)


def test_symlink_pointing_outside_is_not_followed(letterboxd_dir, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "x.jpg"
    outside.write_bytes(jpeg_bytes())
    os.symlink(outside, letterboxd_dir / "posters" / "1000002.jpg")
    films, catalogue = catalogue_of(letterboxd_dir)
    assert "1000002" not in films
    assert catalogue.dropped["poster-outside-folder"] == ["1000002"]


def test_an_id_with_several_poster_files_gets_the_same_one_on_every_machine(letterboxd_dir):
    posters = letterboxd_dir / "posters"
    (posters / "1000001.jpg").rename(posters / "1000001.webp")
    for name in ("1000001.png", "1000001.PNG", "tt0086383.jpeg"):
        (posters / name).write_bytes(jpeg_bytes())
    catalogue = build_catalogue(find_source(letterboxd_dir))
    chosen = dict(zip(catalogue.films["id"], catalogue.films["poster"]))
    assert chosen["1000001"] == "posters/1000001.PNG"      # .png before .webp, then by name
    assert chosen["tt0086383"] == "posters/tt0086383.jpg"  # .jpg before .jpeg
    assert catalogue.notes[
        "ids with several poster files (the first of .jpg, .jpeg, .png, ... used)"] == 2


def test_duplicate_rows_and_odd_genre_names(letterboxd_dir):
    with open(letterboxd_dir / "genres.csv", "a", encoding="utf-8") as handle:
        handle.write('1000001,Drama\n1000001,"Crime, ""Noir"""\n1000001,Ciné|ma\n1000001,Ciné\n')
    films, catalogue = catalogue_of(letterboxd_dir)
    assert films["1000001"] == 'Ciné|Crime, "Noir"|Drama'
    assert catalogue.notes["duplicate label rows"] == 1
    assert catalogue.notes["genre names with '|' dropped"] == 1


def test_spaces_after_the_separators_do_not_make_new_genres(letterboxd_dir, tmp_path):
    """A hand-written label file with a space after each comma (`tt1, "Drama"`) kept the
    quotes of a quoted field: '"Drama"' became a genre of its own beside Drama."""
    with open(letterboxd_dir / "genres.csv", "a", encoding="utf-8", newline="") as handle:
        handle.write(' 1000001 , "Drama" \r\ntt0086383,  "Crime"\r\n')
    films, catalogue = catalogue_of(letterboxd_dir)
    assert films["1000001"] == "Drama" and films["tt0086383"] == "Action|Crime"
    assert catalogue.notes["duplicate label rows"] == 1
    (tmp_path / "list" / "posters").mkdir(parents=True)
    (tmp_path / "list" / "labels.csv").write_text('id, genres\n7, "Drama|Comedy"\n')
    (tmp_path / "list" / "posters" / "7.jpg").write_bytes(jpeg_bytes())
    assert catalogue_of(tmp_path / "list")[0] == {"7": "Comedy|Drama"}


@pytest.mark.parametrize("separator, named", [(";", "semicolons"), ("\t", "tabs")])
def test_a_label_file_separated_otherwise_than_by_commas_is_told_so(letterboxd_dir, separator,
                                                                    named):
    """Spreadsheets set to some languages save CSV with semicolons: it was only 'no label
    file found', with nothing to say why."""
    path = letterboxd_dir / "genres.csv"
    path.write_text(path.read_text().replace(",", separator))
    with pytest.raises(KitError, match=f"genres.csv separates its columns with {named}: save "
                                       "it comma-separated"):
        find_source(letterboxd_dir)


@pytest.mark.parametrize("late", [False, True])
def test_a_label_file_in_another_encoding_is_told_to_be_saved_as_utf8(letterboxd_dir, late):
    """Said as 'can't decode byte 0xe9 in position 1632', a position within pandas' buffer;
    a bad byte past the rows that decide the schema said 'cannot read' the same way."""
    rows = "".join(f"{9000000 + n},Drama\n" for n in range(SCHEMA_ROWS + 50)) if late else ""
    with open(letterboxd_dir / "genres.csv", "ab") as handle:
        handle.write(f"{rows}1000001,Comédie\n".encode("latin-1"))
    with pytest.raises(KitError, match=r"is not UTF-8 text \(it holds the byte 0xe9, .*\); "
                                       "save it as UTF-8 CSV$"):
        build_catalogue(find_source(letterboxd_dir), chunksize=1000)


def test_genre_names_alike_but_for_case_are_noted(letterboxd_dir):
    with open(letterboxd_dir / "genres.csv", "a", encoding="utf-8") as handle:
        handle.write("tt0086383,action\n1000001,DRAMA\n")
    films, catalogue = catalogue_of(letterboxd_dir)
    assert films["tt0086383"] == "Action|action"
    assert catalogue.notes["genre names differing only in case, kept apart (Action / action; "
                           "DRAMA / Drama)"] == 2


def test_missing_folder_and_unknown_layout_give_clear_messages(tmp_path):
    with pytest.raises(KitError, match="does not exist"):
        find_source(tmp_path / "nope")
    with pytest.raises(KitError, match="data folder /dev/null is not a folder"):
        find_source("/dev/null")                          # once 'does not exist'
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(KitError, match="expected genres.csv with columns id,genre"):
        find_source(tmp_path)
    with pytest.raises(KitError, match="notes.csv is a file: give the data folder"):
        find_source(tmp_path / "notes.csv")              # once 'does not exist'
    with pytest.raises(KitError, match="label file .* is a folder"):
        find_source(tmp_path.parent, labels=tmp_path.name)
    with pytest.raises(KitError, match="--posters .*notes.csv is no folder"):  # once 'no poster
        find_source(tmp_path, posters=str(tmp_path / "notes.csv"))   # folder ... (or give it)'


def test_a_folder_where_no_film_has_both_a_genre_and_a_poster_is_refused(letterboxd_dir):
    """Once a dataset of no film, stored and reported; the split after it said only 'no genre
    has at least --min-support 10 films among 0'."""
    labels = letterboxd_dir / "genres.csv"
    text = labels.read_text()
    labels.write_text("id,genre\n")
    with pytest.raises(KitError, match="genres.csv gives no film a genre$"):
        build_catalogue(find_source(letterboxd_dir))
    labels.write_text(text.replace("\ntt0086567,", "\ntt0086567.jpg,").replace(
        "\ntt0086383,", "\nx,").replace("\n1000001,", "\ny,"))
    with pytest.raises(KitError, match=r"none of the 4 films of .*genres.csv has a poster in "
                                       r".*posters \(ids such as '1000002', 'tt0086567.jpg', "
                                       r"'x'; posters such as '1000001.jpg', '9999999.jpg', "
                                       r"'tt0086383.jpg'\): a poster is named after its film's "
                                       r"id, as <id>.jpg"):
        build_catalogue(find_source(letterboxd_dir))
    nested = letterboxd_dir / "posters" / "a"
    nested.mkdir()
    for poster in (letterboxd_dir / "posters").glob("*.jpg"):
        poster.rename(nested / poster.name)
    with pytest.raises(KitError, match=r"posters holds no poster \(no .jpg, .jpeg, .*\); "
                                       "posters are read from the folder itself, not from its "
                                       "subfolders: give the one that holds them with "
                                       "--posters$"):
        build_catalogue(find_source(letterboxd_dir))
    shutil.rmtree(nested)
    with pytest.raises(KitError, match=r"posters holds no poster \(no .jpg, .jpeg, .*\)$"):
        build_catalogue(find_source(letterboxd_dir))


def test_a_named_pipe_among_the_label_files_is_passed_by(letterboxd_dir):
    """A FIFO named genres.csv made kit prepare wait for a writer for ever (a thread waits for
    the detection here, so the old behaviour fails the test instead of hanging it)."""
    (letterboxd_dir / "genres.csv").unlink()
    os.mkfifo(letterboxd_dir / "genres.csv")
    outcome = []
    detection = threading.Thread(target=lambda: outcome.append(_refusal(letterboxd_dir)),
                                 daemon=True)
    detection.start()
    detection.join(timeout=60)
    assert outcome and "no label file found" in outcome[0]
    with pytest.raises(KitError, match="genres.csv is not a regular file"):
        find_source(letterboxd_dir, labels="genres.csv")


def _refusal(folder) -> str:
    try:
        find_source(folder)
    except KitError as error:
        return str(error)
    return "accepted"


def test_missing_poster_folder_is_named(tmp_path):
    (tmp_path / "genres.csv").write_text("id,genre\n1,Drama\n")
    with pytest.raises(KitError, match="no poster folder.*posters/"):
        find_source(tmp_path)


def wide_data_set(root, frame):
    (root / "Images").mkdir()
    frame.to_csv(root / "train.csv", index=False)
    for film_id in frame["Id"]:
        (root / "Images" / f"{film_id}.jpg").write_bytes(jpeg_bytes())


def test_wide_schema_is_decided_once_whatever_the_chunk_size(tmp_path):
    # Horror is 0 or blank in every row but the last: per-chunk detection lost or found it
    # depending on --chunksize, and blank cells dropped the genre.
    rows = 30
    wide_data_set(tmp_path, pd.DataFrame({
        "Id": [f"tt{i:02d}" for i in range(rows)], "Title": [f"film {i}" for i in range(rows)],
        "Drama": ["1"] * rows, "Horror": [""] * (rows - 1) + ["1"]}))
    tables = [catalogue_of(tmp_path)[0]]
    tables += [dict(zip(*[build_catalogue(find_source(tmp_path), chunksize=size).films[c]
                          for c in ("id", "genres")])) for size in (1, 7)]
    assert tables[0] == tables[1] == tables[2]
    assert tables[0]["tt29"] == "Drama|Horror" and tables[0]["tt00"] == "Drama"


def test_wide_file_with_a_repeated_column_or_a_stray_value_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "Images").mkdir()
    (tmp_path / "a" / "train.csv").write_text("Id,Action,Drama,Action\ntt1,1,0,0\ntt2,0,1,1\n")
    with pytest.raises(KitError, match="repeats the column names 'Action'"):
        build_catalogue(find_source(tmp_path / "a"))
    (tmp_path / "b").mkdir()
    rows = SCHEMA_ROWS + 50                       # the stray value lies past the schema rows
    frame = pd.DataFrame({"Id": [f"tt{i}" for i in range(rows)], "Action": ["1", "0"] * (rows // 2),
                          "Drama": ["0"] * (rows - 1) + ["yes"]})
    wide_data_set(tmp_path / "b", frame)
    with pytest.raises(KitError, match=f"row {rows} column 'Drama' holds 'yes'"):
        build_catalogue(find_source(tmp_path / "b"), chunksize=1000)


@pytest.mark.parametrize("cell", ["NaN", "None", "null", "['Drama', None]", "[nan]"])
def test_missing_values_are_never_genre_names(tmp_path, cell):
    (tmp_path / "posters").mkdir()
    pd.DataFrame({"id": ["7", "8"], "genres": [cell, "Comedy"]}).to_csv(
        tmp_path / "labels.csv", index=False)
    for film_id in ("7", "8"):
        (tmp_path / "posters" / f"{film_id}.jpg").write_bytes(jpeg_bytes())
    films, catalogue = catalogue_of(tmp_path)
    genres = {g for text in films.values() for g in text.split("|")}
    assert genres <= {"Drama", "Comedy"} and films["8"] == "Comedy"


# A NUL was once stored, and no submission could then name that genre: the harness refuses any
# file holding a NUL.
@pytest.mark.parametrize("name", ["Sci\u2028Fi", "Film\x85Noir", "Dra\x0cma", "Tele\rvision",
                                  "id", "ID", "Dra\x00ma"])
def test_genre_names_no_list_can_hold_are_refused_at_ingest(letterboxd_dir, name):
    with open(letterboxd_dir / "genres.csv", "a", encoding="utf-8", newline="") as handle:
        handle.write(f'tt0086383,"{name}"\n')
    with pytest.raises(KitError, match="rename it in the label file"):
        build_catalogue(find_source(letterboxd_dir))


def test_another_csv_with_repeated_names_does_not_stop_detection(tmp_path):
    (tmp_path / "posters").mkdir()
    (tmp_path / "a-credits.csv").write_text("id,name,name\n7,A,B\n")     # looked at first
    pd.DataFrame({"id": ["7"], "genres": ["Drama"]}).to_csv(tmp_path / "labels.csv", index=False)
    (tmp_path / "posters" / "7.jpg").write_bytes(jpeg_bytes())
    films, catalogue = catalogue_of(tmp_path)
    assert catalogue.source.layout == "list" and films == {"7": "Drama"}
