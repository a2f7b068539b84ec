"""The report's figures, drawn beside the computation.

A section says which figures its page shows as soon as it is computed
(`explain_attn.report.section.Section.figures`): `Drawing` objects, each a
module-level function of a figure module (`figures`, `first_screen_
figures`, `training_figures`, `faithfulness_figures`: matplotlib and
NumPy, no TensorFlow) and its arguments (arrays, numbers, strings). A
`Drawer` takes them in that order:

- by default it keeps them and each is drawn in this process when the page
  asks for it (as rendering always did);
- in a helper process (`drawing_process`, what ``explain-attn report``
  uses), each is drawn as soon as it is submitted, while this process goes
  on with the next sections: matplotlib's drawing runs beside TensorFlow's
  passes instead of after them. In threads it would not: drawing holds
  Python's lock, and matplotlib is not thread-safe. On the demo (2 cores)
  the faithfulness checks then drawing took 16.2-16.9 s, in one process
  beside the other 11.5-11.7 s, in a thread 14.3-14.8 s
  (`benchmarks/RESULTS.md`, issue 27, eighth round).

A figure that the helper cannot draw because the helper is gone (killed,
out of memory) is drawn here; an error of the figure itself is raised as
it would be here.
"""

import concurrent.futures
import contextlib
import dataclasses
import functools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
from collections.abc import Callable

__all__ = ["Drawer", "Drawing", "Figures", "drawing_process"]


@dataclasses.dataclass(frozen=True)
class Drawing:
    """One figure to draw: ``function(*arguments)``, its PNG ``data:`` URI
    (or what the page shows of it).

    Attributes:
        function: A module-level function of a module that imports no
            TensorFlow (a helper process imports it to draw).
        arguments: Its arguments: NumPy arrays, numbers, strings, and
            lists, tuples and dicts of them (a helper process gets a copy).
    """

    function: Callable
    arguments: tuple = ()

    def __call__(self):
        return self.function(*self.arguments)


class _Pending:
    """A figure submitted to a helper process; drawn here if the helper is
    gone."""

    def __init__(self, drawing, future):
        self.drawing, self.future = drawing, future

    def result(self):
        try:
            return self.future.result()
        except concurrent.futures.process.BrokenProcessPool:
            return self.drawing()


class _Later:
    """A figure drawn in this process when it is first asked for."""

    def __init__(self, drawing):
        self.drawing = drawing

    @functools.cached_property
    def _value(self):
        return self.drawing()

    def result(self):
        return self._value


class Drawer:
    """Takes each section's figures when it is computed; `figures` gives
    them drawn.

    Args:
        executor: ``None`` to draw each figure in this process when the
            page asks for it, or a `concurrent.futures.Executor` of
            processes (`drawing_process`) to draw it there at once.
    """

    def __init__(self, executor=None):
        self.executor = executor
        self.pending = {}

    def submit(self, name, drawings):
        """Takes section ``name``'s figures: name -> `Drawing`."""
        self.pending[name] = {
            key: self._handle(drawing) for key, drawing in drawings.items()
        }

    def _handle(self, drawing):
        """A drawing the helper cannot get (e.g. a function defined inside
        another, which pickle cannot name) is drawn here."""
        if self.executor is None:
            return _Later(drawing)
        try:
            sent = pickle.dumps(drawing, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError):
            return _Later(drawing)
        try:
            return _Pending(drawing, self.executor.submit(_draw, sent))
        except concurrent.futures.process.BrokenProcessPool:
            return _Later(drawing)

    def figures(self):
        """Section name -> `Figures` (what `Report.figures` holds)."""
        pending = self.pending.items()
        return {name: Figures(handles) for name, handles in pending}


class Figures:
    """One section's figures by name, each drawn (or waited for) when it is
    first read: ``figures["strip"]``."""

    def __init__(self, handles):
        self._handles = handles

    def __getitem__(self, key):
        return self._handles[key].result()

    def __contains__(self, key):
        return key in self._handles

    def get(self, key, default=None):
        return self[key] if key in self else default


def _draw(sent):
    """In the helper: the pickled `Drawing` ``sent``, drawn."""
    return pickle.loads(sent)()


def _helper_start():
    """The helper's start: Ctrl-C is the command's to handle (the helper
    ends with it), not a second traceback; and the helper ends when the
    command does, even killed (its pool would wait for work forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), daemon=True).start()


def _end_with(parent):
    multiprocessing.connection.wait([parent.sentinel])
    os._exit(0)


def _warm():
    """Imports matplotlib and the figure modules in the helper (while the
    command imports TensorFlow)."""
    import explain_attn.report.faithfulness_figures  # noqa: F401
    import explain_attn.report.first_screen_figures  # noqa: F401
    import explain_attn.report.training_figures  # noqa: F401


@contextlib.contextmanager
def drawing_process():
    """A `Drawer` whose figures a helper process draws (started now, with
    Python's ``spawn``: it imports the figure modules, not TensorFlow); the
    helper ends with the block, once the figures submitted are drawn (on
    an error or Ctrl-C, without waiting for those not started). Where no
    process can be started (no ``sem_open``, no process left), the figures
    are drawn in this process.

    As with every ``spawn`` process, the helper first imports the script
    that started it: a script calling `drawing_process` needs the ``if
    __name__ == "__main__":`` guard (`multiprocessing`, "Safe importing of
    main module"); ``explain-attn report`` is such a script."""
    executor = _started()
    if executor is None:
        yield Drawer()
        return
    try:
        yield Drawer(executor)
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _started():
    """The helper's executor, its imports under way; ``None`` if it cannot
    start."""
    try:
        executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_helper_start,
        )
        executor.submit(_warm)
    except (OSError, ImportError, NotImplementedError):
        return None
    return executor
