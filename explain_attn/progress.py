"""Progress of long work, with the time left, on a terminal only.

Training epochs, the evaluation pass and each faithfulness check show a
line that redraws itself (``\\r``) on a terminal::

    evaluation  ██████░░░░░░░░░░  380/1,000 images · 6 s left

In a log (standard error is not a terminal) or under ``--quiet`` nothing
is drawn: a log keeps only the lines the command prints anyway. Whether
progress shows is one setting for the whole run (`quiet`), read where the
bar is made (`progress_bar`).

Example:

```python
with progress_bar(1000, "evaluation", unit="images") as bar:
    for chunk in chunks:
        ...
        bar.add(len(chunk))
```
"""

import contextlib
import contextvars
import sys
import time

import keras

__all__ = [
    "EpochProgress",
    "Progress",
    "progress_bar",
    "progress_enabled",
    "quiet",
]

_QUIET = contextvars.ContextVar("explain_attn_quiet", default=False)
WIDTH = 16
"""Characters of the bar."""


@contextlib.contextmanager
def quiet(enabled=True):
    """Within the block, no progress is drawn (``--quiet``)."""
    token = _QUIET.set(bool(enabled))
    try:
        yield
    finally:
        _QUIET.reset(token)


def progress_enabled(stream=None):
    """Whether progress shows: not quiet, and ``stream`` (standard error
    by default) is a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not _QUIET.get() and bool(isatty and isatty())


def time_left(elapsed, done, total):
    """Seconds left at the pace so far; ``None`` before any work is done.

    ``elapsed * (total - done) / done``: the rate of the work done so far
    applied to what is left.
    """
    if done <= 0:
        return None
    return max(0.0, elapsed * (total - done) / done)


def _duration(seconds):
    if seconds is None:
        return "estimating"
    if seconds < 60:
        return f"{seconds:.0f} s left"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s left"


class Progress:
    """A progress line with the time left, drawn on ``stream``.

    Args:
        total: The amount of work (images, epochs, steps); ``None`` when
            unknown (an iterable without a length): the line then counts
            the work done, without a bar or the time left.
        description: What is being done, e.g. ``"evaluation"``.
        unit: The work's unit, plural (``"images"``).
        stream: Where to draw; standard error by default.
        enabled: ``None`` to draw only on a terminal and when not quiet
            (`progress_enabled`); ``True`` or ``False`` to decide.
        clock: Returns seconds; `time.perf_counter` by default.
    """

    def __init__(
        self,
        total,
        description,
        *,
        unit="",
        stream=None,
        enabled=None,
        clock=time.perf_counter,
    ):
        self.total = None if total is None else max(int(total), 0)
        self.description = description
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = (
            progress_enabled(self.stream) if enabled is None else enabled
        )
        self.done = 0
        self._clock = clock
        self._started = clock()

    def line(self):
        """The progress line as text (without ``\\r``)."""
        unit = f" {self.unit}" if self.unit else ""
        if self.total is None:
            return f"{self.description}  {self.done:,}{unit}"
        share = self.done / self.total if self.total else 1.0
        filled = round(WIDTH * min(share, 1.0))
        bar = "█" * filled + "░" * (WIDTH - filled)
        left = time_left(self._clock() - self._started, self.done, self.total)
        return (
            f"{self.description}  {bar}  {self.done:,}/{self.total:,}{unit}"
            f" · {_duration(left)}"
        )

    def update(self, done):
        """Sets the work done to ``done`` and redraws."""
        self.done = int(done)
        if self.enabled:
            self.stream.write("\r" + self.line() + "\033[K")
            self.stream.flush()

    def add(self, amount=1):
        """Adds ``amount`` to the work done and redraws."""
        self.update(self.done + amount)

    def close(self):
        """Ends the line (on a terminal); the next output starts afresh."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False


@contextlib.contextmanager
def progress_bar(total, description, **options):
    """A `Progress` closed at the end of the block."""
    bar = Progress(total, description, **options)
    try:
        yield bar
    finally:
        bar.close()


class EpochProgress(keras.callbacks.Callback):
    """Training's progress over its epochs, with the time left.

    Keras' own bar shows the steps of one epoch; this line shows the
    epochs and the time left for the whole run. Draws nothing where
    `Progress` draws nothing.

    Args:
        description: What is trained, e.g. the model's name.
        **options: Passed to `Progress` (``stream``, ``enabled``).
    """

    def __init__(self, description="training", **options):
        super().__init__()
        self.description = description
        self.options = options
        self.bar = None

    def on_train_begin(self, logs=None):
        epochs = self.params.get("epochs") or 1
        self.bar = Progress(
            epochs, self.description, unit="epochs", **self.options
        )

    def on_epoch_end(self, epoch, logs=None):
        self.bar.update(epoch + 1)

    def on_train_end(self, logs=None):
        self.bar.close()


def keras_verbose():
    """``verbose`` for `keras.Model.fit`: its bar on a terminal (1), one
    line per epoch in a log (2), nothing when quiet (0)."""
    if _QUIET.get():
        return 0
    return 1 if progress_enabled(sys.stdout) else 2
