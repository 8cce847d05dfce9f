"""clbench: fixed, versioned continual-learning protocols; methods come from plugins.

Importing this package is cheap (no torch, no avalanche): plugin authors need only
`hookimpl`, `Method`, `Hyperparameters` and `StrategyContext` from here. The notebook API,
`load_records`, `records_frame` and `leaderboard_frame` (pandas DataFrames), is imported
on first use (docs/notebooks.md).
"""

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms)
if TYPE_CHECKING:
    from .hookspecs import hookimpl
    from .methods import (
        STATELESS,
        Checkpointing,
        Hyperparameters,
        Method,
        NoHyperparameters,
        StrategyContext,
    )

__version__ = "0.1.0"

#: Names imported on first use: the plugin API (pluggy and pydantic take ~0.13 s, the
#: `clbench` command's first instant, in which a Ctrl-C must stay one line: clbench._entry)
#: and the notebook API (so that `import clbench` never loads pandas or torch; see
#: docs/notebooks.md). Name -> module that defines it.
_LAZY = {"hookimpl": "hookspecs", "STATELESS": "methods", "Checkpointing": "methods",
         "Hyperparameters": "methods", "Method": "methods", "NoHyperparameters": "methods",
         "StrategyContext": "methods",
         "load_records": "frames", "records_frame": "frames", "leaderboard_frame": "leaderboard"}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'clbench' has no attribute '{name}'")
