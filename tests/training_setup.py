"""What the training tests share: a tiny LeNet run and the private folder moved away."""
import contextlib
import shutil


TINY = dict(model="lenet", epochs=2, batch_size=16, patience=5)


@contextlib.contextmanager
def private_moved_away(competition, tmp_path):
    """The competition's private/ folder elsewhere for the block: what runs in it never needs
    the answer key (the frozen-embedding and cross-fitted tests run inside it too)."""
    private, hidden = competition.folder / "private", tmp_path / "private-away"
    shutil.move(private, hidden)
    try:
        yield
    finally:
        shutil.move(hidden, private)
