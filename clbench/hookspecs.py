"""The hooks a clbench plugin can implement (the whole plugin API lives here).

A plugin is any module or object exposed through the `clbench` entry-point group whose
functions are marked with `clbench.hookimpl`. See docs/writing-a-method-plugin.md.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "clbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def clbench_register_methods(register: Callable[["clbench.methods.Method"], None]) -> None:  # noqa: F821
    """Register continual-learning methods.

    Call ``register(Method(...))`` once for each method the plugin provides. The harness
    records which distribution registered it, and refuses two methods of the same name.
    """
