"""Finding and loading method plugins through the `clbench` entry-point group.

Loading rules (the same spirit as pytest, tox, datasette and llm):

- ``CLBENCH_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry points at all;
- ``CLBENCH_PLUGINS=dist-a,dist-b`` loads only the entry points of those distributions;
- a hook implementation that matches no specification is an error (``check_pending``);
- two plugins registering the same method name is an error naming both;
- a plugin that fails to import (or to register) is reported by name with its error, and
  every other plugin keeps working.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from .errors import ClbenchError, did_you_mean, unknown_name
from .methods import Method, RegisteredMethod

ENTRY_POINT_GROUP = "clbench"
DISABLE_AUTOLOAD_ENV = "CLBENCH_DISABLE_PLUGIN_AUTOLOAD"
ALLOWED_PLUGINS_ENV = "CLBENCH_PLUGINS"
IN_PROCESS = "(in-process)"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as loaded (or not): its entry point, distribution and outcome."""

    name: str
    distribution: str
    version: str
    methods: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class Registry:
    """Every method that installed plugins registered, and what happened to each plugin."""

    methods: dict[str, RegisteredMethod] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)

    @property
    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error]

    def get(self, name: str) -> RegisteredMethod:
        """The method called `name`, or a one-line error that also names broken plugins."""
        if name in self.methods:
            return self.methods[name]
        error = unknown_name("method", name, self.methods)
        if self.failures:
            broken = ", ".join(f"{p.name} ({p.error})" for p in self.failures)
            raise ClbenchError(f"{error}; plugins that failed to load: {broken}")
        raise error


def _autoload_enabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in {"1", "true", "yes"}


def _allowed_distributions() -> set[str] | None:
    value = os.environ.get(ALLOWED_PLUGINS_ENV)
    if value is None:
        return None
    return {_normalise(part) for part in value.split(",") if part.strip()}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_registry(extra_plugins: dict[str, object] | None = None) -> Registry:
    """Load entry-point plugins (and `extra_plugins`, name -> module, for tests) into a Registry."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    registry = Registry()
    origin: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)

    if _autoload_enabled():
        allowed = _allowed_distributions()
        for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = entry_point.dist
            dist_name = dist.metadata["Name"] if dist else "unknown"
            version = dist.version if dist else "unknown"
            if allowed is not None and _normalise(dist_name) not in allowed:
                continue
            if manager.has_plugin(entry_point.name):
                first = origin.get(entry_point.name, ("another distribution",))[0]
                registry.plugins.append(PluginInfo(
                    entry_point.name, dist_name, version,
                    error=f"entry point name '{entry_point.name}' is already used by {first}; not loaded"))
                continue
            try:
                manager.register(entry_point.load(), name=entry_point.name)
            except Exception as exc:  # a broken plugin must not take the others down
                registry.plugins.append(PluginInfo(entry_point.name, dist_name, version, error=_describe(exc)))
                continue
            origin[entry_point.name] = (dist_name, version)

    for name, plugin in (extra_plugins or {}).items():
        manager.register(plugin, name=name)
        origin[name] = (IN_PROCESS, "0")

    _check_hook_names(manager, origin)

    for impl in manager.hook.clbench_register_methods.get_hookimpls():
        dist_name, version = origin[impl.plugin_name]
        found: list[Method] = []

        def register(method: Method, _found=found) -> None:
            if not isinstance(method, Method):
                raise TypeError(f"register() takes a clbench.Method, got {type(method).__name__}")
            _found.append(method)

        try:
            impl.function(register=register)
        except Exception as exc:
            registry.plugins.append(PluginInfo(impl.plugin_name, dist_name, version, error=_describe(exc)))
            continue
        for method in found:
            if method.name in registry.methods:
                other = registry.methods[method.name]
                raise ClbenchError(
                    f"method '{method.name}' is registered twice: by {other.plugin} "
                    f"{other.version} and by {dist_name} {version} (plugin "
                    f"'{impl.plugin_name}'); uninstall one or choose plugins with "
                    f"{ALLOWED_PLUGINS_ENV}"
                )
            registry.methods[method.name] = RegisteredMethod(method, dist_name, version)
        registry.plugins.append(
            PluginInfo(impl.plugin_name, dist_name, version, tuple(m.name for m in found))
        )
    registry.plugins.sort(key=lambda p: p.name)
    return registry


def _check_hook_names(manager: pluggy.PluginManager, origin: dict[str, tuple[str, str]]) -> None:
    """A hook implementation with no matching specification is an error (usually a typo)."""
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        name = manager.get_name(exc.plugin) or "?"
        dist = origin.get(name, ("unknown", ""))[0]
        hook = re.search(r"unknown hook '([^']+)'", str(exc))
        hook_name = hook.group(1) if hook else str(exc)
        known = [n for n in dir(hookspecs) if n.startswith("clbench_")]
        raise ClbenchError(
            f"plugin '{name}' ({dist}) implements unknown hook '{hook_name}'"
            f"{did_you_mean(hook_name, known)}"
        ) from None


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load_registry()
    return _REGISTRY
