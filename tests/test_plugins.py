"""Plugin loading rules, exercised with real distributions installed on sys.path."""

import itertools
import json
import textwrap

import pytest

from clbench.errors import ClbenchError
from clbench.plugins import load_registry

_counter = itertools.count()

GOOD_PLUGIN = """
from clbench import Method, hookimpl
from pydantic import BaseModel

class Hyper(BaseModel):
    strength: float = 1.0

def factory(ctx, hp):
    from avalanche.training.supervised import Naive
    return Naive(**ctx.strategy_kwargs())

@hookimpl
def clbench_register_methods(register):
    register(Method(name={name!r}, factory=factory, hyperparameters=Hyper))
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Install throw-away distributions (dist-info + module) into a sys.path folder."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CLBENCH_PLUGINS", raising=False)
    monkeypatch.delenv("CLBENCH_DISABLE_PLUGIN_AUTOLOAD", raising=False)

    def install(dist: str, source: str, version: str = "1.2.3") -> str:
        module = f"clbench_testplug_{next(_counter)}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[clbench]\n{dist} = {module}\n")
        return module

    return install


def test_entry_point_plugin_is_found_with_its_distribution(site):
    site("clbench-alpha", GOOD_PLUGIN.format(name="alpha-method"))
    registry = load_registry()
    registered = registry.get("alpha-method")
    assert (registered.plugin, registered.version) == ("clbench-alpha", "1.2.3")
    assert "naive" in registry.methods  # the installed baselines keep working


def test_disable_autoload_loads_no_entry_points(site, monkeypatch):
    site("clbench-alpha", GOOD_PLUGIN.format(name="alpha-method"))
    monkeypatch.setenv("CLBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert load_registry().methods == {}


def test_allow_list_loads_only_named_distributions(site, monkeypatch):
    site("clbench-alpha", GOOD_PLUGIN.format(name="alpha-method"))
    site("clbench-beta", GOOD_PLUGIN.format(name="beta-method"))
    monkeypatch.setenv("CLBENCH_PLUGINS", "clbench_beta")  # names are normalised
    assert set(load_registry().methods) == {"beta-method"}


def test_misnamed_hook_is_an_error(site):
    site("clbench-typo", """
        from clbench import hookimpl

        @hookimpl
        def clbench_register_method(register):
            pass
    """)
    with pytest.raises(ClbenchError, match="clbench_register_method"):
        load_registry()


def test_duplicate_method_names_are_an_error_naming_both(site):
    site("clbench-alpha", GOOD_PLUGIN.format(name="same"))
    site("clbench-beta", GOOD_PLUGIN.format(name="same"))
    with pytest.raises(ClbenchError) as info:
        load_registry()
    assert "clbench-alpha" in str(info.value) and "clbench-beta" in str(info.value)


def test_failing_import_is_reported_and_others_keep_working(site):
    site("clbench-broken", "import this_module_does_not_exist\n")
    site("clbench-alpha", GOOD_PLUGIN.format(name="alpha-method"))
    registry = load_registry()
    assert "alpha-method" in registry.methods and "naive" in registry.methods
    [failure] = registry.failures
    assert failure.distribution == "clbench-broken"
    assert "ModuleNotFoundError" in failure.error


def test_registering_something_else_is_reported(site):
    site("clbench-odd", """
        from clbench import hookimpl

        @hookimpl
        def clbench_register_methods(register):
            register("not a method")
    """)
    [failure] = load_registry().failures
    assert "clbench.Method" in failure.error


def test_cli_lists_methods_and_plugins(cli):
    code, out, _ = cli("methods", "--json")
    rows = json.loads(out)
    naive = next(r for r in rows if r["name"] == "naive")
    assert code == 0 and naive["plugin"] == "clbench-baselines"
    assert {"name", "plugin", "version", "scenarios", "hyperparameters"} <= set(naive)
    code, out, _ = cli("plugins", "--json")
    assert code == 0 and any(p["distribution"] == "clbench-baselines" for p in json.loads(out))
