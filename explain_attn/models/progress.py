"""A run's progress kept across kills: `TrainingProgress`.

`keras.callbacks.BackupAndRestore` brings back the weights and the epoch of
an interrupted run, but not what the earlier epochs logged: the `History`
of a resumed `fit` starts at the epoch it resumes from. This callback keeps
each finished epoch's logs and seconds in a small JSON file (rewritten
atomically after each epoch), so that a resumed run's history and training
time describe the whole run.
"""

import json
import time
from pathlib import Path

import keras

from explain_attn.writing import atomic_path

__all__ = ["TrainingProgress"]


class TrainingProgress(keras.callbacks.Callback):
    """Keeps every finished epoch's logs and seconds in ``path``.

    Args:
        path: The JSON file; read at the start of training when
            ``resume`` is on and it exists.
        resume: Continue the file's epochs: those from the epoch that
            training (resumed by `keras.callbacks.BackupAndRestore`)
            starts at are dropped.

    Attributes:
        history: Log name -> one value per finished epoch, of the whole
            run (earlier runs' epochs first).
        epoch_seconds: Seconds of each finished epoch, likewise.
        earlier_seconds: Seconds of the epochs that earlier, interrupted
            runs finished (0 for a fresh run).
    """

    def __init__(self, path, *, resume=False):
        super().__init__()
        self.path = Path(path)
        self.resume = resume
        self.history = {}
        self.epoch_seconds = []
        self.earlier_seconds = None
        self._started = None

    def on_train_begin(self, logs=None):
        self.history, self.epoch_seconds = {}, []
        self.earlier_seconds = None
        if self.resume and self.path.is_file():
            try:
                saved = json.loads(self.path.read_text(encoding="utf-8"))
                self.history = {
                    str(name): [float(v) for v in values]
                    for name, values in saved["history"].items()
                }
                self.epoch_seconds = [float(s) for s in saved["seconds"]]
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                self.history, self.epoch_seconds = {}, []  # Start afresh.

    def on_epoch_begin(self, epoch, logs=None):
        # A resumed run starts at `epoch`: later entries are stale.
        self.epoch_seconds = self.epoch_seconds[:epoch]
        self.history = {k: v[:epoch] for k, v in self.history.items()}
        if self.earlier_seconds is None:
            self.earlier_seconds = sum(self.epoch_seconds)
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._started)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        text = json.dumps(
            {"history": self.history, "seconds": self.epoch_seconds}
        )
        with atomic_path(self.path) as temporary:
            temporary.write_text(text, encoding="utf-8")
