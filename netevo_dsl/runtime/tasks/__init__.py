"""Task implementations; their declarations live in `netevo_dsl.ops.tasks`.

`make_task` accepts a registered name, a `(name, kwargs)` pair, or a task
object (anything with a `kind`), and returns a task object.
"""
from __future__ import annotations

from ...errors import UsageError
from ...ops.tasks import get_task_spec

SKLEARN_DATASETS = ("digits", "iris", "wine", "breast_cancer")
SEQUENCE_TASKS = ("copy", "reverse", "majority", "parity")


def make_task(task):
    if hasattr(task, "kind") and not isinstance(task, (str, tuple)):
        return task
    if isinstance(task, str):
        name, kwargs = task, {}
    elif isinstance(task, tuple) and len(task) == 2 and isinstance(task[0], str):
        name, kwargs = task[0], dict(task[1] or {})
    else:
        raise UsageError(f"cannot make a task from {task!r}",
                         hint="pass a task name, a (name, kwargs) pair, or a task object")
    params = get_task_spec(name).resolve(kwargs)
    return _load(name, params)


def _load(name: str, params: dict):
    if name in SKLEARN_DATASETS:
        from .classification import load_sklearn_task

        return load_sklearn_task(name, params)
    if name == "xor":
        from .classification import load_xor_task

        return load_xor_task(params)
    if name in ("swingup", "cartpole"):
        from .control import load_control_task

        return load_control_task(name, params)
    if name in SEQUENCE_TASKS:
        from .sequence import make_sequence_task

        return make_sequence_task(name, params)
    if name == "text":
        from .sequence import load_text_task

        return load_text_task(params)
    if name == "csv":
        from .tabular import load_csv_task

        return load_csv_task(params)
    raise UsageError(f"task `{name}` is declared but has no implementation")
