"""What a long run has finished, for the error that stops it.

A command that works for minutes (training, evaluating thousands of images,
the faithfulness checks) must not lose that work silently: when it fails,
its one-line error says what finished, in how long, and what of it is kept.
The library marks its expensive stages with `stage`; a caller that wants
the account opens a `recording` (the command line does, for every command)
and reads the `StageLog` when an error reaches it. Without a recording,
`stage` only runs its block.

Within a recording, a stage that produces one *section* of a larger result
(``stage(..., section="faithfulness")``) is optional: if it fails, the
error is logged in `StageLog.skipped` and the run goes on without that
section, so that the rest is still written; the caller then reports the
failure (the report shows a warning, `explain-attn report` exits with 2).

Example:

```python
with recording() as log:
    try:
        with stage("the evaluation of 1,000 test images"):
            evaluate()
        with stage("rendering the report"):
            render()
    except Exception as error:
        print(failure_message(log, error))
```
"""

import contextlib
import contextvars
import dataclasses
import os
import re
import time
import traceback

__all__ = [
    "FinishedStage",
    "SkippedStage",
    "StageLog",
    "current_log",
    "error_reason",
    "failure_message",
    "interrupt_message",
    "keep",
    "recording",
    "stage",
    "watch_outputs",
]

_CURRENT = contextvars.ContextVar("explain_attn_stage_log", default=None)


@dataclasses.dataclass(frozen=True)
class FinishedStage:
    """A stage that ran to its end: what it did and in how many seconds."""

    description: str
    seconds: float


@dataclasses.dataclass(frozen=True)
class SkippedStage:
    """An optional stage that failed; the run went on without its section.

    Attributes:
        description: What the stage did.
        section: The section left out.
        reason: The error, as one sentence (`error_reason`).
        seconds: How long it ran before failing.
        finished: How many stages had finished before it.
    """

    description: str
    section: str
    reason: str
    seconds: float
    finished: int


@dataclasses.dataclass
class StageLog:
    """The account of a run: finished, failed and skipped stages, and what
    is kept.

    Attributes:
        finished: `FinishedStage` objects, in order.
        failed: The description of the stage that was running when an
            error stopped the run, if any.
        skipped: `SkippedStage` objects (optional stages that failed).
        kept: What the finished work left behind: sentences, or functions
            called (once, by `kept_sentences`) only when the run fails,
            e.g. to write the trained weights. A stage's ``kept`` replaces
            the earlier stages' (it says all that is kept by then); `keep`
            adds to it.
    """

    finished: list = dataclasses.field(default_factory=list)
    failed: str | None = None
    skipped: list = dataclasses.field(default_factory=list)
    kept: list = dataclasses.field(default_factory=list)
    outputs: dict = dataclasses.field(default_factory=dict)

    def watch(self, *paths):
        """Notes the run's outputs as they are now, to tell after an
        interruption which it wrote and which are the earlier ones."""
        for path in paths:
            self.outputs[str(path)] = _signature(path)

    def outputs_sentences(self):
        """Each watched output: written by this run, earlier and
        unchanged, or not there."""
        sentences = []
        for path, before in self.outputs.items():
            now = _signature(path)
            if now is None:
                sentences.append(f"no {path}")
            elif now != before:
                sentences.append(f"{path}, written by this run")
            else:
                sentences.append(f"the earlier {path}, unchanged")
        return sentences

    def kept_sentences(self):
        """What is kept, in words; calls the functions among `kept`.

        A function that fails is reported as such (``nothing (keeping it
        failed: ...)``), never raised: the run's own error matters more.
        """
        sentences = []
        for item in self.kept:
            if callable(item):
                try:
                    item = item()
                except Exception as error:  # Keeping is best effort.
                    reason = error_reason(error)
                    item = f"nothing (keeping it failed: {reason})"
            if item:
                sentences.append(str(item))
        self.kept = list(sentences)
        return sentences


def _signature(path):
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_ino, status.st_mtime_ns, status.st_size)


def current_log():
    """The `StageLog` being recorded, or ``None``."""
    return _CURRENT.get()


@contextlib.contextmanager
def recording():
    """Records the stages run inside the block; yields the `StageLog`."""
    log = StageLog()
    token = _CURRENT.set(log)
    try:
        yield log
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def stage(description, *, kept=None, section=None):
    """Marks the block as a stage of the run being recorded.

    Args:
        description: What the stage does, as a phrase that reads after
            "Finished before the error: " and before " failed" (``"the
            evaluation of 1,000 test images"``, ``"rendering the
            report"``).
        kept: What is kept once the stage has finished (a sentence, or a
            function returning one, called only if the run later fails);
            replaces what earlier stages kept.
        section: For an optional stage, the name of the section it
            produces: within a recording, an error in the block is logged
            in `StageLog.skipped` and not raised.
    """
    log = _CURRENT.get()
    started = time.perf_counter()
    try:
        yield
    except KeyboardInterrupt:
        if log is not None:
            log.failed = log.failed or description
        raise
    except Exception as error:
        if log is None:
            raise
        if section is None:
            log.failed = log.failed or description
            raise
        log.failed = None  # The run goes on.
        log.skipped.append(
            SkippedStage(
                description=description,
                section=section,
                reason=error_reason(error),
                seconds=time.perf_counter() - started,
                finished=len(log.finished),
            )
        )
        return
    if log is not None:
        seconds = time.perf_counter() - started
        log.finished.append(FinishedStage(description, seconds))
        if kept is not None:
            log.kept = [kept]


def interrupt_message(log):
    """The one-line account of a run stopped by Ctrl-C: the stage it
    stopped in, what finished, and what is on disk (the sentences kept so
    far and the watched outputs; nothing more is written)."""
    text = "Interrupted (Ctrl-C)"
    if log.failed:
        text += f" during {log.failed}"
    if log.finished:
        parts = [f"{s.description} ({s.seconds:.1f} s)" for s in log.finished]
        text += f". Finished before: {', '.join(parts)}"
    sentences = [str(s) for s in log.kept if isinstance(s, str) and s]
    sentences += log.outputs_sentences()
    kept = "; ".join(sentences) if sentences else "nothing"
    return f"{text}. Kept: {kept}."


def watch_outputs(*paths):
    """Notes the outputs of the run being recorded (`StageLog.watch`)."""
    log = _CURRENT.get()
    if log is not None:
        log.watch(*paths)


def keep(sentence):
    """Adds ``sentence`` to what the run being recorded keeps."""
    log = _CURRENT.get()
    if log is not None:
        log.kept.append(sentence)


TENSORFLOW_MESSAGE_LIMIT = 300
"""Characters kept of an error passed through from TensorFlow."""

_USER_CODE = re.compile(r'File "([^"]*)", line \d+, in (\w+)\s*\*?\s*([^\n]*)')
_LIBRARY = re.compile(r"site-packages|dist-packages|/lib/python\d")
_NODE = re.compile(
    r"\{\{node ([^}]+)\}\}|\[Op:(\w+)\]|__wrapped__(?:_+Mkl)?(\w+?)_device"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LAST_ERROR = re.compile(r"\b\w+(?:Error|Exception): ", re.MULTILINE)


def tensorflow_reason(error):
    """One line of at most `TENSORFLOW_MESSAGE_LIMIT` characters for an
    error raised inside TensorFlow, naming the operation; ``None`` for
    other errors.

    TensorFlow's messages span many lines: the Python frames of a traced
    function ("in user code: File ..."), the graph node (``{{node
    Conv2D}}``), and sometimes a tensor's values. The line keeps the
    operation (the node, else the last traced statement) and the last
    error's own sentence; values in brackets are dropped.
    """
    text = _ANSI.sub("", str(error))  # Keras colours names in its errors.
    is_op_error = type(error).__module__.startswith("tensorflow")
    traced = _traced(error)
    if not is_op_error and "in user code:" not in text and not traced:
        return None
    node = _NODE.search(text)
    frames = _USER_CODE.findall(text) or traced
    if node is not None:
        operation = f"operation {next(g for g in node.groups() if g)}"
    elif frames:  # The last frame of the project or the user's code.
        own = [f for f in frames if not _LIBRARY.search(f[0])] or frames
        _, function, statement = own[-1]
        operation = f"{function}: {statement.strip()}"
    else:
        operation = (
            f"operation {getattr(getattr(error, 'op', None), 'name', '?')}"
        )
    errors = list(_LAST_ERROR.finditer(text))
    if errors:  # The last error's sentence, and what follows it.
        cause = _without_frames(" ".join(text[errors[-1].start() :].split()))
    elif traced:  # The whole message, as AutoGraph's frames ended in it.
        message = _without_frames(" ".join(text.split()))
        cause = f"{type(error).__name__}: {message}"
    else:
        cause = text.strip().splitlines()[0]
    cause = re.sub(r"\{\{[^}]*\}\}\s*", "", " ".join(cause.split()))
    cause = re.sub(r"\[[^\]]*\]", "[…]", cause)
    line = f"TensorFlow failed in {operation} ({cause})"
    if len(line) > TENSORFLOW_MESSAGE_LIMIT:
        line = line[: TENSORFLOW_MESSAGE_LIMIT - 1] + "…"
    return line


def _traced(error):
    """``[(file, function, statement)]`` of the frames of an error raised
    inside `explain_attn.devices.graph_function`'s trace (its note), the
    frames AutoGraph used to put into the message; ``[]`` otherwise."""
    # Imported here: the command imports this module before NumPy, whose
    # BLAS threads it sets first (`explain_attn.cli.report`).
    from explain_attn import devices

    notes = getattr(error, "__notes__", ())
    if not any(str(note).startswith(devices.TRACED_NOTE) for note in notes):
        return []
    return [
        (frame.filename, frame.name, frame.line or "")
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename != devices.__file__  # The wrapper's own frame.
    ]


def error_reason(error):
    """An error as one sentence: the message of input errors
    (`ValueError`, `TypeError`), else the type's name and the message;
    errors from TensorFlow cut to one line (`tensorflow_reason`), stack
    frames and tensor values left out of any other."""
    short = tensorflow_reason(error)
    if short is not None:
        return short
    message = _without_frames(" ".join(str(error).split()))
    if not isinstance(error, ValueError | TypeError):
        message = _shortened(message)
        name = type(error).__name__
        message = f"{name}: {message}" if message else name
    return message


_FRAME = re.compile(r"File \"[^\"]*\", line \d+")
_CAUSE = re.compile(r"\b\w+(?:Error|Exception): ")
_TAILS = re.compile(
    r"Traceback \(most recent call last\)|\(?defined at \(most recent call"
    r"|Stack trace|Arguments received by|tf\.Tensor\(|<tf\.Tensor|array\(\["
)
_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")
_LONGEST = 240
"""Characters of a reason from TensorFlow, Keras or h5py (the stage and
what is kept come around it; the line stays under about 300)."""


def _without_frames(message):
    """``message`` without the stack frames and tensor values TensorFlow
    puts into its errors' text: after frames, the last ``SomeError: ...``
    (the cause), cut where arguments, tensors or another trace begin."""
    message = _FUNCTION_NODE.sub("", _ANSI.sub("", message))
    frames = list(_FRAME.finditer(message))
    if frames:
        causes = list(_CAUSE.finditer(message, frames[-1].end()))
        if causes:
            message = message[causes[-1].start() :]
        else:
            message = message[: frames[0].start()]
    found = _TAILS.search(message)
    if found is not None:
        message = message[: found.start()]
    return message.rstrip(" :,;([{•")


def _shortened(message):
    if len(message) <= _LONGEST:
        return message
    return message[: _LONGEST - 1].rstrip() + "…"


def _sentence(text):
    return text if text.endswith((".", "!", "?")) else f"{text}."


def failure_message(log, error=None):
    """The one-line account of a failed run.

    ``error`` stopped the run in stage `StageLog.failed` (if known); with
    ``error=None``, the run ended but an optional stage was skipped (the
    first of `StageLog.skipped`). An input error (`ValueError`,
    `TypeError`) before any stage finished is told as it is.

    Returns:
        One line: ``"<Stage> failed: <reason> Finished before the error:
        <stage> (<seconds> s), ... Kept: <what>."``
    """
    if error is None:
        skipped = log.skipped[0]
        failed, reason = skipped.description, skipped.reason
        finished = log.finished[: skipped.finished]
    else:
        failed, reason = log.failed, error_reason(error)
        finished = log.finished
    plain = not finished and isinstance(error, ValueError | TypeError)
    text = reason
    if failed and not plain:
        text = f"{failed[:1].upper()}{failed[1:]} failed: {reason}"
    if finished:
        parts = [f"{s.description} ({s.seconds:.1f} s)" for s in finished]
        text = f"{_sentence(text)} Finished before the error: "
        text += f"{', '.join(parts)}."
    if finished or error is None:
        sentences = log.kept_sentences()
        text = _sentence(text) + (
            f" Kept: {'; '.join(sentences)}."
            if sentences
            else " Nothing of it is kept."
        )
    return text
