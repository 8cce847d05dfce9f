"""clbench: fixed, versioned continual-learning protocols; methods come from plugins.

Importing this package is cheap (no torch, no avalanche): plugin authors need only
`hookimpl`, `Method` and `StrategyContext` from here.
"""

from .hookspecs import hookimpl
from .methods import STATELESS, Checkpointing, Method, NoHyperparameters, StrategyContext

__version__ = "0.1.0"

__all__ = ["hookimpl", "Checkpointing", "STATELESS", "Method", "NoHyperparameters", "StrategyContext", "__version__"]
