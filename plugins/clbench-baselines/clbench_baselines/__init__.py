"""clbench's baseline methods: thin, documented wrappers of Avalanche 0.6 strategies.

One module per family, each with its hyperparameter models (frozen pydantic models whose
defaults cite their source), factories and `METHODS`:

- `naive`: fine-tuning (`naive`);
- `regularisation`: `ewc`, `online-ewc`, `si`, `mas`, `lwf` (no stored samples);
- `rehearsal`: `replay`, `gdumb`, `der`, `er-ace` (a fixed buffer of `mem_size` samples);
- `gradient_memory`: `gem`, `agem` (`patterns_per_exp` samples per phase);
- `icarl`: `icarl` (class-incremental protocols only).

Avalanche is imported inside the factories, so listing methods stays fast.
"""

from __future__ import annotations

from clbench import hookimpl

from . import gradient_memory, icarl, naive, regularisation, rehearsal

METHODS = [
    *naive.METHODS,
    *regularisation.METHODS,
    *rehearsal.METHODS,
    *gradient_memory.METHODS,
    *icarl.METHODS,
]


@hookimpl
def clbench_register_methods(register):
    for method in METHODS:
        register(method)
