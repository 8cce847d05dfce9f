"""The `clbench` command: a thin shell over the library.

Every user mistake ends as one line on stderr and exit status 2. Commands that only list
things never import torch or avalanche, so they answer at once.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import statistics
from pathlib import Path

from tabulate import tabulate

from . import __version__
from .errors import ClbenchError, HarnessFailure, Interrupted
from .inputs import one_line

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        raise ClbenchError(message)


def _add_protocol_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", "-p", required=True, metavar="NAME",
                        help="named protocol (see `clbench protocols`)")
    _add_set_option(parser)


def _add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a protocol field, e.g. training.epochs=3 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="clbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"clbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    protocols = commands.add_parser("protocols", help="list the named protocols, or show one")
    protocols_commands = protocols.add_subparsers(dest="protocols_command", metavar="show", parser_class=_Parser)
    protocols.add_argument("--json", action="store_true", help="print JSON")
    show = protocols_commands.add_parser("show", help="the fully resolved protocol and its hash")
    show.add_argument("name", metavar="NAME")
    _add_set_option(show)
    show.add_argument("--json", action="store_true", help="print JSON")

    env = commands.add_parser("env-matrix", help="the environment's phase x task sample counts")
    _add_protocol_options(env)
    env.add_argument("--seed", type=int, default=0, help="seed (only the stochastic environment uses it)")
    env.add_argument("--json", action="store_true", help='print {"matrix": [[...], ...]}')

    evaluate = commands.add_parser("evaluate", help="run a method on a protocol and print its metrics")
    evaluate.add_argument("method", metavar="METHOD", help="method name (see `clbench methods`)")
    evaluate.add_argument("--protocol", "-p", metavar="NAME", default="smoke",
                          help="named protocol (default: smoke; see `clbench protocols`)")
    _add_set_option(evaluate)
    evaluate.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                          help="seeds to run (default: the protocol's seeds)")
    evaluate.add_argument("--hp", dest="hyperparameters", action="append", default=[],
                          metavar="KEY=VALUE", help="set a method hyperparameter (repeatable)")
    evaluate.add_argument("--hp-from", metavar="TUNING_RECORD",
                          help="use the setting a `clbench tune` record chose (docs/tuning.md)")
    evaluate.add_argument("--data-root", metavar="DIR",
                          help="torchvision dataset root (default: $CLBENCH_DATA_ROOT, else "
                               "${XDG_CACHE_HOME:-~/.cache}/clbench/data, downloading there)")
    evaluate.add_argument("--out", default="results", metavar="DIR", help="folder for run records (default: results)")
    evaluate.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    evaluate.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    evaluate.add_argument("--force", action="store_true",
                          help="run seeds whose valid record is already in --out again (default: skip them)")
    evaluate.add_argument("--sandbox", action="store_true",
                          help="deny the method's processes the data root (Linux Landlock; docs/trust.md)")
    evaluate.add_argument("--no-fast-path", dest="fast_path", action="store_false",
                          help="use Avalanche's per-sample data loader (for A/B checks; slower)")
    evaluate.add_argument("--log", action="append", default=[], metavar="TARGET",
                          help="also stream each phase to tensorboard:DIR, wandb[:PROJECT] or csv:DIR "
                               "(repeatable; clbench.loggers)")

    methods = commands.add_parser("methods", help="list the installed methods")
    methods.add_argument("--json", action="store_true", help="print JSON")

    suite = commands.add_parser("suite", help="run a named grid of runs, skipping finished ones")
    suite.add_argument("name", metavar="NAME", nargs="?", help="suite name (see --list)")
    suite.add_argument("--list", action="store_true", help="list the suites and their sizes")
    suite.add_argument("--dry-run", action="store_true", help="show the runs and which are done")
    suite.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="default: 0 1 2")
    suite.add_argument("--out", metavar="DIR", help="record folder (default: results/suites/NAME)")
    suite.add_argument("--data-root", metavar="DIR", help="torchvision dataset root")
    suite.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    suite.add_argument("--executor", default="local", choices=["local", "process", "ray"],
                       help="local: one run after another; process: --jobs worker processes; "
                            "ray: one Ray task per run (pip install 'clbench[ray]')")
    suite.add_argument("--ray-address", metavar="ADDR",
                       help="an existing Ray cluster (default: start a local one)")
    suite.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel runs (process executor)")
    suite.add_argument("--time-limit", type=float, metavar="SECONDS",
                       help="stop any run that takes longer (recorded as failed)")
    suite.add_argument("--sandbox", action="store_true",
                       help="deny the methods the data root (Linux Landlock; local executor; docs/trust.md)")

    tune = commands.add_parser("tune", help="choose hyperparameters on the protocol's tuning stream "
                                            "(never its test data)")
    tune.add_argument("method", metavar="METHOD", help="method name (see `clbench methods`)")
    tune.add_argument("--protocol", "-p", metavar="NAME", default="smoke",
                      help="the protocol to choose for (default: smoke); tuning runs on its tuning stream")
    _add_set_option(tune)
    tune.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                      help="values to try (repeatable; default: the method's search_space)")
    tune.add_argument("--trials", type=int, metavar="N", help="try N settings of the grid, drawn at random")
    tune.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                      help="seeds per setting (default: the protocol's seeds)")
    tune.add_argument("--out", metavar="DIR", help="folder for the tuning record and its runs "
                                                   "(default: results/tuning/PROTOCOL__METHOD)")
    tune.add_argument("--data-root", metavar="DIR", help="torchvision dataset root")
    tune.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    tune.add_argument("--executor", default="local", choices=["local", "process", "ray"],
                      help="where the trial runs execute (as for `clbench suite`)")
    tune.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster")
    tune.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel runs (process, ray)")
    tune.add_argument("--time-limit", type=float, metavar="SECONDS",
                      help="stop any run that takes longer (its setting is never chosen)")

    check = commands.add_parser("check-plugin", help="run the standard checks on an installed method")
    check.add_argument("method", metavar="METHOD", nargs="?", help="method name (or --record)")
    check.add_argument("--hp", dest="hyperparameters", action="append", default=[], metavar="KEY=VALUE",
                       help="check under these hyperparameters, not the defaults (repeatable)")
    check.add_argument("--record", metavar="FILE",
                       help="check the method and hyperparameters a record reports, on its protocol "
                            "(--protocol/--set choose another)")
    check.add_argument("--protocol", "-p", metavar="NAME",
                       help="protocol to check on (default: smoke, or a small smnist-5 for class-only methods)")
    _add_set_option(check)
    check.add_argument("--data-root", metavar="DIR", help="torchvision dataset root")
    check.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")

    plugins = commands.add_parser("plugins", help="list the installed plugins")
    plugins.add_argument("--json", action="store_true", help="print JSON")

    board = commands.add_parser("leaderboard", help="aggregate run records into publishable tables")
    board.add_argument("records", nargs="+", metavar="RECORDS",
                       help="record files, or folders searched recursively for *.json")
    board.add_argument("--protocol", "-p", metavar="P", help="keep only records of protocol name P or hash prefix P")
    board.add_argument("--format", "-f", choices=["md", "latex", "csv", "html", "json"],
                       help="output format (default: from --out's suffix, else md)")
    board.add_argument("--out", "-o", metavar="FILE", help="write to FILE (atomically) instead of stdout")
    board.add_argument("--strict", action="store_true",
                       help="leave out records without the harness's audit block (written before "
                            "clbench audited every run) and say how many")

    verify = commands.add_parser("verify", help="re-run records and compare every result field")
    verify.add_argument("records", nargs="+", metavar="RECORD",
                        help="record files, or folders searched recursively for *.json")
    verify.add_argument("--data-root", metavar="DIR", help="torchvision dataset root")
    verify.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: each record's own device)")
    verify.add_argument("--executor", default="local", choices=["local", "process", "ray"],
                        help="where the re-runs execute (as for `clbench suite`)")
    verify.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel re-runs (process, ray)")

    plot = commands.add_parser("plot", help="draw figures (accuracy matrices, curves) from run records")
    plot.add_argument("records", nargs="+", metavar="RECORDS",
                      help="record files, or folders searched recursively for *.json")
    plot.add_argument("--out", "-o", required=True, metavar="DIR", help="folder for the figures (created if needed)")
    plot.add_argument("--protocol", "-p", metavar="P", help="keep only records of protocol name P or hash prefix P")
    plot.add_argument("--format", "-f", default="png,pdf", metavar="FORMATS",
                      help="comma-separated file formats: png, pdf (default: png,pdf)")
    return parser


def _print_json(data) -> None:
    print(json.dumps(data, indent=2))


def _resolve_protocol(name: str, overrides: list[str]):
    from .presets import get_protocol
    from .protocol import apply_overrides

    return apply_overrides(get_protocol(name), overrides)


def cmd_protocols(args) -> int:
    from .presets import PROTOCOLS

    if args.protocols_command == "show":
        protocol = _resolve_protocol(args.name, args.overrides)
        resolved = protocol.resolved()
        memory = protocol.memory_estimate()
        size = protocol.network_size
        network = {"parameters": size.total, "feature_parameters": size.features,
                   "head_parameters": size.heads, "heads": protocol.benchmark.n_heads,
                   "input_shape": list(protocol.benchmark.input_shape)}
        if args.json:
            _print_json({**resolved, "memory_estimate_bytes": memory.as_dict(), "network": network})
        else:
            print(f"# {protocol.name} v{protocol.version}  hash {protocol.hash}")
            heads = protocol.benchmark.n_heads
            print(f"# network: {protocol.model.describe()} on {'x'.join(map(str, network['input_shape']))} "
                  f"inputs, {size.total:,} parameters ({size.features:,} in the trunk, {size.heads:,} in "
                  f"{heads} head{'s' if heads > 1 else ''} of {protocol.benchmark.output_classes} outputs)")
            print(f"# memory: {memory.describe()}")
            print(json.dumps({k: v for k, v in resolved.items() if k != "hash"}, indent=2))
        return 0
    rows = []
    for p in PROTOCOLS.values():
        b = p.benchmark
        rows.append({
            "name": p.name, "version": p.version, "hash": p.short_hash,
            "benchmark": b.name, "scenario": b.scenario, "tasks": b.n_tasks,
            "train/task": b.train_samples_per_task, "environment": p.environment.kind,
            "model": p.model.describe(), "parameters": p.parameters,
            "epochs": p.training.epochs, "description": p.description,
        })
    if args.json:
        _print_json(rows)
    else:
        print(tabulate([{k: v for k, v in r.items() if k != "description"} for r in rows],
                       headers="keys", tablefmt="github"))
    return 0


def cmd_env_matrix(args) -> int:
    protocol = _resolve_protocol(args.protocol, args.overrides)
    matrix = protocol.env_matrix(args.seed)
    if args.json:
        print(json.dumps({"matrix": matrix}))
        return 0
    T = len(matrix)
    rows = [[f"phase {p}"] + row + [sum(row)] for p, row in enumerate(matrix)]
    print(f"{protocol.name} ({protocol.environment.kind}, hash {protocol.short_hash}); "
          "rows = phases, columns = tasks")
    print(tabulate(rows, headers=[""] + [f"task {t}" for t in range(T)] + ["total"], tablefmt="github"))
    return 0


def _parse_hyperparameters(registered, assignments: list[str]):
    from .protocol import parse_assignment

    values = dict(parse_assignment(text, "--hp") for text in assignments)
    return registered.method.parse_hyperparameters(values)


def cmd_evaluate(args) -> int:
    from .datasets import resolve_data_root
    from .plugins import get_registry
    from .records import ensure_writable_dir

    protocol = _resolve_protocol(args.protocol, args.overrides)
    from .isolation import start_harness

    start_harness()  # its start-up overlaps with importing Avalanche and the plugins
    if args.sandbox:  # before any plugin is imported
        from .sandbox import enter

        enter(resolve_data_root(args.data_root), [Path(args.out)])
    registered = get_registry().get(args.method)
    hyperparameters = _parse_hyperparameters(registered, args.hyperparameters)
    source = None
    if args.hp_from:
        from .tuning import check_applies, read_tuning_record, source_of

        if args.hyperparameters:
            raise ClbenchError("--hp-from and --hp together: the tuned setting is the whole setting")
        tuned = read_tuning_record(args.hp_from)
        check_applies(tuned, registered.name, protocol, Path(args.hp_from))
        hyperparameters = registered.method.parse_hyperparameters(tuned.selected)
        source = source_of(tuned)
    seeds = args.seeds if args.seeds is not None else list(protocol.seeds)
    if any(s < 0 for s in seeds):
        raise ClbenchError("seeds must be non-negative integers")
    if len(set(seeds)) != len(seeds):
        raise ClbenchError("--seeds lists a seed twice")
    data_root = resolve_data_root(args.data_root)
    if args.data_root and not data_root.is_dir():
        raise ClbenchError(f"data root '{data_root}' does not exist")

    from .checkpoint import FOLDER as CHECKPOINT_FOLDER
    from .checkpoint import discard_checkpoint, tidy
    from .preflight import check_run_outputs
    from .records import record_filename, write_record
    from .report import accuracy_matrix_table, metrics_table
    from .suites import valid_record
    from .isolation import preload
    from .runner import RunRequest, check_scenario, resolve_device, run

    resolve_device(args.device)
    out = Path(args.out)
    checkpoints = out / CHECKPOINT_FOLDER

    def note(seed):
        return lambda line: print(f"seed {seed}: {line}", file=sys.stderr)

    requests = [RunRequest(protocol, registered, hyperparameters, seed, data_root, args.device,
                           list(args.overrides), progress=not args.quiet, fast_path=args.fast_path,
                           checkpoint_dir=checkpoints, notify=note(seed), sandbox=args.sandbox,
                           hyperparameter_source=source)
                for seed in seeds]
    check_scenario(requests[0])
    from .loggers import listeners, open_folders, parse_targets

    log_targets = parse_targets(args.log)  # a bad --log fails before anything is written
    filenames = {r.seed: record_filename(protocol.name, registered.name, r.seed, r.run_id) for r in requests}
    check_run_outputs(out, filenames.values(), CHECKPOINT_FOLDER)  # before any compute is spent
    done = {} if args.force else {r.seed: found for r in requests
                                  if (found := valid_record(out / filenames[r.seed], r.run_id))}
    if len(done) < len(requests):
        preload(protocol.benchmark, data_root)  # a missing dataset fails before anything is written
    out = ensure_writable_dir(out)
    open_folders(log_targets)
    for request in requests:
        request.listeners = listeners(log_targets, request)
    if removed := tidy(out, [record.run_id for record in done.values()]):
        print(f"removed {len(removed)} leftover file(s) of interrupted runs from {out}", file=sys.stderr)
    print(f"clbench {__version__} · protocol {protocol.name} v{protocol.version} "
          f"(hash {protocol.short_hash}) · method {registered.name} "
          f"({registered.plugin} {registered.version}) · seeds {' '.join(map(str, seeds))}",
          file=sys.stderr)
    records = []
    for request in requests:
        if request.seed in done:
            records.append(done[request.seed])
            print(f"seed {request.seed}: skipped, its record is already in {out / filenames[request.seed]} "
                  "(--force runs it again)", file=sys.stderr)
            continue
        try:
            record = run(request)
        except ClbenchError:
            raise
        except KeyboardInterrupt:
            raise Interrupted(f"{len(records)} of {len(requests)} seeds have their record in {out}; the "
                              "latest checkpoint is kept; run the same command again to continue") from None
        except Exception as exc:  # the method failed: say so in one line, keep the traceback
            return _report_failure(exc, out, protocol, registered, hyperparameters, request.seed, args.overrides)
        path = write_record(record, out)
        discard_checkpoint(checkpoints, record.run_id)
        records.append(record)
        print(f"seed {request.seed}: ACC {record.metrics.acc * 100:.2f}%  "
              f"({record.wall_time_s:.1f} s)  -> {path}", file=sys.stderr)
    if len(records) == 1:
        print(accuracy_matrix_table(records[0]))
        print()
    print(f"{protocol.name} (hash {protocol.short_hash}) · {registered.name} · "
          f"{len(records)} seed(s) · accuracies in %, averaged over tasks")
    print(metrics_table(records))
    return 0


def _report_failure(exc: Exception, out: Path, protocol, registered, hyperparameters, seed: int,
                    overrides: list[str]) -> int:
    """One line for a failed run: the machine's or the data's failure as such, else the method's."""
    from .errors import classify
    from .records import record_failure

    try:
        log = record_failure(out, protocol, registered.name, hyperparameters.model_dump(mode="json"),
                             seed, list(overrides), exc).with_suffix(".log")
        where = f"traceback in {log}"
    except (OSError, ClbenchError) as problem:
        where = f"no traceback written: {problem}"
    harness = classify(exc)
    if harness is not None:
        print(f"clbench: error: seed {seed}: {harness} (a failure of the {harness.kind}, not of "
              f"{registered.name}; {where})", file=sys.stderr)
    else:
        text = str(exc).strip()
        print(f"clbench: error: {registered.name} failed on seed {seed}: "
              f"{type(exc).__name__}: {text.splitlines()[0] if text else ''} ({where})", file=sys.stderr)
    return 1


def _method_rows(registry) -> list[dict]:
    rows = []
    for name in sorted(registry.methods):
        registered = registry.methods[name]
        method = registered.method
        rows.append({
            "name": name,
            "plugin": registered.plugin,
            "version": registered.version,
            "scenarios": list(method.scenarios),
            "hyperparameters": {
                key: ("(required)" if field.is_required() else field.get_default(call_default_factory=True))
                for key, field in method.hyperparameters.model_fields.items()
            },
            "resumable": method.checkpointing is not None,
            "description": method.description,
        })
    return rows


def cmd_methods(args) -> int:
    from .plugins import get_registry

    registry = get_registry()
    rows = _method_rows(registry)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        table = [[r["name"], f"{r['plugin']} {r['version']}", ",".join(r["scenarios"]),
                  "yes" if r["resumable"] else "no",
                  ", ".join(f"{k}={v}" for k, v in r["hyperparameters"].items()) or "-"]
                 for r in rows]
        print(tabulate(table, headers=["method", "plugin", "scenarios", "resumable", "hyperparameters"],
                       tablefmt="github"))
    for failure in registry.failures:
        print(f"clbench: warning: plugin '{failure.name}' ({failure.distribution}) failed to load: "
              f"{failure.error}", file=sys.stderr)
    return 0


def _check_run_options(args) -> None:
    """Seeds and executor options of `suite` and `tune` (one-line errors)."""
    if args.seeds is not None and (any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds)):
        raise ClbenchError("--seeds must be distinct non-negative integers")
    if args.jobs < 1:
        raise ClbenchError("--jobs must be at least 1")
    if args.time_limit is not None and not (math.isfinite(args.time_limit) and args.time_limit > 0):
        raise ClbenchError(f"--time-limit must be a positive, finite number of seconds, not {args.time_limit}")
    if args.ray_address and args.executor != "ray":
        raise ClbenchError("--ray-address needs --executor ray")
    if args.jobs > 1 and args.executor == "local":
        raise ClbenchError("--jobs needs --executor process or ray (local runs one at a time)")


def cmd_tune(args) -> int:
    from .datasets import resolve_data_root
    from .isolation import preload
    from .plugins import get_registry
    from .records import ensure_writable_dir
    from .runner import resolve_device
    from .tuning import at_edge_of_search_space, parse_grid, settings, tune, tuning_protocol

    protocol = _resolve_protocol(args.protocol, args.overrides)
    if protocol.benchmark.stream != "evaluation":
        raise ClbenchError("tune builds the tuning stream itself: leave benchmark.stream at evaluation")
    _check_run_options(args)
    if args.trials is not None and args.trials < 1:
        raise ClbenchError("--trials must be at least 1")
    registered = get_registry().get(args.method)
    if protocol.benchmark.scenario not in registered.method.scenarios:
        raise ClbenchError(f"{registered.name} does not support the {protocol.benchmark.scenario}-incremental "
                           f"scenario of {protocol.name}")
    grid = parse_grid(args.grid, registered.method)
    source = "user" if grid else "method"
    grid = grid or {k: list(v) for k, v in registered.method.search_space.items()}
    if not grid:
        raise ClbenchError(f"{registered.name} declares no search space; give the values to try with "
                           "--grid KEY=V1,V2,...")
    settings(grid, args.trials)  # a grid too large fails before anything runs
    seeds = list(args.seeds if args.seeds is not None else protocol.seeds)
    resolve_device(args.device)
    data_root = resolve_data_root(args.data_root)
    preload(tuning_protocol(protocol).benchmark, data_root)  # too small to hold out validation: exit 2
    out = ensure_writable_dir(Path(args.out or Path("results") / "tuning" / f"{protocol.name}__{registered.name}"))
    record, path = tune(registered, protocol, grid, source, args.trials, seeds, out, data_root, args.device,
                        list(args.overrides), args.executor, args.jobs, time_limit_s=args.time_limit,
                        ray_address=args.ray_address)
    keys = list(record.search_space)
    rows = []
    for trial in record.trials:
        scores = [a for a in trial.acc if a is not None]
        spread = f" ± {statistics.stdev(scores) * 100:.2f}" if len(scores) > 1 else ""
        acc = f"{trial.mean_acc * 100:.2f}{spread}" if trial.mean_acc is not None else f"failed: {trial.failure}"
        mark = "<- selected" if trial.hyperparameters == record.selected else ""
        rows.append([*(trial.hyperparameters.get(k) for k in keys), acc, mark])
    print(f"{registered.name} on {protocol.name}'s tuning stream ({len(seeds)} seed(s) per setting; "
          f"{'grid from --grid' if source == 'user' else 'the method' + chr(39) + 's search space'}):")
    print(tabulate(rows, headers=[*keys, "tuning ACC (%)", ""], tablefmt="github", disable_numparse=True))
    print(f"selected: {' '.join(f'{k}={v}' for k, v in record.selected.items())} "
          f"({record.selection_rule})")
    for key, side in at_edge_of_search_space(record).items():
        print(f"note: {key}={record.selected[key]} is the {side} value searched; the best setting may lie "
              f"beyond it: widen with --grid {key}=...")
    print(f"tuning record: {path}")
    print(f"next: clbench evaluate {registered.name} --protocol {protocol.name} "
          f"{''.join(f'--set {o} ' for o in args.overrides)}--hp-from {path}")
    return 0


def cmd_suite(args) -> int:
    from .suites import SUITES, check_outputs, existing_record, get_suite, plan, run_suite

    if args.list:
        rows = []
        for name in SUITES:
            suite = get_suite(name)
            rows.append([name, len(suite.variants), len(plan(suite)), suite.description])
        print(tabulate(rows, headers=["suite", "variants", "runs (3 seeds)", "description"], tablefmt="github"))
        return 0
    if not args.name:
        raise ClbenchError("suite needs a NAME (or --list)")
    _check_run_options(args)
    if args.sandbox:
        # every worker would start its own harness process, which must read the data root
        if args.executor != "local":
            raise ClbenchError("--sandbox runs with --executor local only (each worker process would "
                               "need the data root for its own harness process)")
        if args.dry_run:
            raise ClbenchError("--sandbox and --dry-run together: a dry run runs no method")
        from .datasets import resolve_data_root
        from .sandbox import enter

        enter(resolve_data_root(args.data_root), [Path(args.out or Path("results") / "suites" / args.name)])
    suite = get_suite(args.name)  # after the sandbox: this imports the plugins
    runs = plan(suite, args.seeds)
    out = Path(args.out or Path("results") / "suites" / suite.name)
    check_outputs(runs, out)
    if args.dry_run:
        for planned in runs:
            done = out.is_dir() and existing_record(out, planned) is not None
            print(f"{'done' if done else 'todo'}  {planned.variant.label}  seed {planned.seed}  "
                  f"{planned.protocol.short_hash}  {planned.filename}")
        return 0
    from .datasets import resolve_data_root
    from .records import ensure_writable_dir
    from .runner import resolve_device
    from .isolation import preload

    resolve_device(args.device)
    data_root = resolve_data_root(args.data_root)
    for benchmark in {p.protocol.benchmark for p in runs}:
        preload(benchmark, data_root)
    out = ensure_writable_dir(out)
    outcome = run_suite(runs, out, data_root, args.device, executor=args.executor, jobs=args.jobs,
                        time_limit_s=args.time_limit, ray_address=args.ray_address, sandbox=args.sandbox)
    print(f"suite {suite.name}: {len(outcome.completed)} run, {len(outcome.skipped)} already done, "
          f"{len(outcome.failed)} failed; records in {out}")
    for planned, reason in outcome.failed:
        print(f"  failed: {planned.variant.label} seed {planned.seed}: {reason}")
    return 1 if outcome.failed else 0


def cmd_check_plugin(args) -> int:
    from .testing import check_method

    if args.protocol:
        _resolve_protocol(args.protocol, args.overrides)  # bad names and values fail here, as usage errors
    if args.record:
        from .testing import check_record_configuration

        if args.method or args.hyperparameters:
            raise ClbenchError("--record checks the record's method and hyperparameters; drop METHOD and --hp")
        report = check_record_configuration(args.record, data_root=args.data_root, protocol=args.protocol,
                                            overrides=args.overrides, device=args.device)
        print(report.summary())
        return 0 if report.passed else 1
    if not args.method:
        raise ClbenchError("check-plugin needs a METHOD (or --record FILE)")
    from .plugins import get_registry
    from .protocol import parse_assignment

    values = dict(parse_assignment(text, "--hp") for text in args.hyperparameters)
    get_registry().get(args.method).method.parse_hyperparameters(values)  # bad --hp: exit 2
    report = check_method(args.method, data_root=args.data_root, protocol=args.protocol,
                          overrides=args.overrides, device=args.device, hyperparameters=values)
    print(report.summary())
    return 0 if report.passed else 1


def cmd_plugins(args) -> int:
    from .plugins import get_registry

    registry = get_registry()
    rows = [{"name": p.name, "distribution": p.distribution, "version": p.version,
             "methods": list(p.methods), "error": p.error} for p in registry.plugins]
    if args.json:
        _print_json(rows)
    else:
        print(tabulate([[r["name"], r["distribution"], r["version"], ", ".join(r["methods"]),
                         r["error"] or "ok"] for r in rows],
                       headers=["plugin", "distribution", "version", "methods", "status"], tablefmt="github"))
    return 0


def _check_paths(inputs: list[str], out: str | None) -> None:
    """Every input and output path fits the filesystem (one line, before any work)."""
    from .preflight import check_path

    for path in inputs:
        check_path(path, "records path")
    if out:
        check_path(out, "output path")


def _audited_only(inputs: list[str]) -> list:
    """`leaderboard --strict`: the record files that carry an audit block, saying how many did not."""
    from .leaderboard import record_paths
    from .records import read_record

    paths = record_paths(inputs)
    kept = [path for path in paths if read_record(path).audit is not None]
    print(f"--strict: left out {len(paths) - len(kept)} of {len(paths)} record(s) without an audit block",
          file=sys.stderr)
    if not kept:
        raise ClbenchError("--strict: no record carries an audit block; re-run them with this clbench")
    return kept


def cmd_verify(args) -> int:
    from .datasets import resolve_data_root
    from .leaderboard import record_paths
    from .verify import report, verify

    if args.jobs < 1:
        raise ClbenchError("--jobs must be at least 1")
    _check_paths(args.records, None)
    paths = record_paths(args.records)
    if not paths:
        raise ClbenchError(f"no record files (*.json) found in {', '.join(args.records)}")
    verdicts = verify(paths, resolve_data_root(args.data_root), args.device, args.executor, args.jobs)
    print(report(verdicts))
    return 0 if all(v.confirmed for v in verdicts) else EXIT_FAILURE


def cmd_leaderboard(args) -> int:
    from .leaderboard import format_for, leaderboard_text, write_output

    _check_paths(args.records, args.out)
    records = _audited_only(args.records) if args.strict else args.records
    text = leaderboard_text(records, args.protocol, format_for(args.format, args.out))
    if args.out:
        print(f"wrote {write_output(args.out, text)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_plot(args) -> int:
    from .plots import write_plots

    _check_paths(args.records, args.out)
    paths = write_plots(args.records, args.out, args.protocol, args.format)
    for path in paths:
        print(path)
    print(f"wrote {len(paths)} files to {args.out}", file=sys.stderr)
    return 0


COMMANDS = {
    "protocols": cmd_protocols,
    "env-matrix": cmd_env_matrix,
    "evaluate": cmd_evaluate,
    "methods": cmd_methods,
    "plugins": cmd_plugins,
    "check-plugin": cmd_check_plugin,
    "suite": cmd_suite,
    "tune": cmd_tune,
    "leaderboard": cmd_leaderboard,
    "plot": cmd_plot,
    "verify": cmd_verify,
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except HarnessFailure as exc:  # the machine's, the data's or the harness's failure
        print(f"clbench: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except ClbenchError as exc:  # one line even when it echoes a name with a line break
        print(f"clbench: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # clbench.errors.Interrupted says what was kept
        print(f"clbench: interrupted{f': {exc}' if str(exc) else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `clbench ... | head`: the reader left, which is fine
        sys.stderr.close()
        return 0
