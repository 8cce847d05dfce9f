"""Process isolation: the process that runs method code never holds test data.

Three roles, three processes:

- the **method process** (where `runner.run` and the method's strategy live) receives each
  phase's training tensors when that phase starts, and nothing else of the dataset;
- the **harness process** (spawned; it imports no plugin and never unpickles anything a
  method process sends) reads the dataset, cuts it into tasks, keeps every test set and
  label, hands out phase data in order and scores models;
- the **predictor process** (spawned by the harness process, only for models that are not
  the harness's own architecture, such as iCaRL's nearest-mean classifier) unpickles the
  method's model, receives test *inputs* but never labels, and returns predictions only.

Messages into the harness process are decoded with ``torch.load(weights_only=True)``, which
builds tensors, numbers, strings, lists and dicts and runs no code. A model with the
harness-built architecture travels as its ``state_dict`` (raw bytes after the message, read
into tensors whose layout the message announces) and is scored by the harness's own copy
of that architecture. Phase data go the other way in memfd shared memory (Linux) or as raw
bytes: docs/trust.md, "What it costs". The harness process answers only the protocol's schedule
of measurements (phases in order; per phase one evaluation of every task and at most
``4 * (curve_points + 2)`` learning-curve points: the probe takes one per planned
``1/curve_points`` of the phase's steps, and methods that train on memory samples too
take more steps than planned), so a method cannot use it as an accuracy oracle
on the test labels; a request outside the schedule fails the run.
"""

from __future__ import annotations

import atexit
import io
import os
import threading
import time
from pathlib import Path

import torch

from .errors import ClbenchError, RunFailure

#: Seconds to wait for the harness process to answer before declaring it dead.
_POLL_S = 0.5


class IsolationRefused(RunFailure):
    """The harness process refused a request outside the protocol's measurement schedule."""


class HarnessProcessFailure(RuntimeError):
    """The harness process died or failed: a failure of the harness, not of the method."""


def _encode(message: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(message, buffer)
    return buffer.getvalue()


def _decode(blob: bytes) -> dict:
    """Decode a message from an untrusted process: tensors and plain data only, no code."""
    message = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    if not isinstance(message, dict):
        raise ValueError("malformed message")
    return message


def _spawn(entry: str, name: str):
    """Start `python -c 'clbench.isolation.<entry>(fd)'` in a fresh interpreter.

    A plain subprocess rather than multiprocessing's spawn: it never re-imports the
    caller's `__main__` (scripts and notebooks without a main guard keep working), and
    the child inherits nothing but one end of a socket pair.
    """
    import socket
    import subprocess
    import sys
    from multiprocessing.connection import Connection

    ours, theirs = socket.socketpair()
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_parent, *filter(None, [env.get("PYTHONPATH")])])
    code = f"import clbench.isolation as i; i.{entry}({theirs.fileno()}, {os.getpid()})"
    from .signals import sigint_blocked_for_children

    with sigint_blocked_for_children():  # Ctrl-C is the parent's to handle
        process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(theirs.fileno(),),
                                   env=env, stdin=subprocess.DEVNULL)
    theirs.close()
    process.name = name
    return process, Connection(ours.detach())


def _connection(fd: int):
    from multiprocessing.connection import Connection

    return Connection(fd)


def _send(conn, obj) -> None:
    """Send to a trusted reader: plain pickle (tensors are copied, no shared-memory handles)."""
    import pickle

    conn.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _receive_trusted(conn):
    import pickle

    return pickle.loads(conn.recv_bytes())


#: Tensors at least this large travel as raw bytes after their message, not pickled in it.
_RAW_MIN_BYTES = 1 << 16


def _raw_socket(conn):
    """A second handle on `conn`'s socket, for tensors sent as raw bytes after a message.

    Phase data are tens of MB per phase; pickling them and copying them through the
    connection's buffers cost about a fifth of a `pmnist-10` run. Raw bytes go from one
    tensor's memory into the other's with one copy each way. The handle shares the
    connection's blocking socket, and both sides agree on the order: the message's frame,
    then the raw bytes of the tensors it announces, in order.
    """
    import socket

    sock = socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(None)  # blocking, like the connection it shares the socket with
    return sock


def _bytes_of(tensor: torch.Tensor) -> memoryview:
    return memoryview(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


def _send_raw(sock, tensors) -> None:
    for tensor in tensors:
        if tensor.numel():
            sock.sendall(_bytes_of(tensor))


def _receive_raw_into(sock, tensors) -> None:
    """Fill each (CPU, contiguous) tensor with exactly its size in bytes from `sock`."""
    for tensor in tensors:
        if not tensor.numel():
            continue
        view = memoryview(tensor.reshape(-1).view(torch.uint8).numpy())
        done = 0
        while done < len(view):
            got = sock.recv_into(view[done:], min(len(view) - done, 1 << 22))
            if not got:
                raise EOFError("the other process closed the connection mid-transfer")
            done += got


#: Linux hands large tensors over as anonymous shared memory (memfd): the harness process
#: writes them once and the method process maps the same pages, so nothing is copied
#: through the socket. Elsewhere they go through the socket as raw bytes.
_MEMFD = hasattr(os, "memfd_create") and hasattr(__import__("socket"), "send_fds")


def _split_raw(value):
    """(value with its large top-level tensors replaced by placeholders, those tensors)."""
    if not isinstance(value, (tuple, list)):
        return value, []
    raw, out = [], []
    for item in value:
        if isinstance(item, torch.Tensor) and item.numel() * item.element_size() >= _RAW_MIN_BYTES:
            out.append({"raw": len(raw), "shape": tuple(item.shape), "dtype": item.dtype,
                        "via": "memfd" if _MEMFD else "bytes"})
            raw.append(item)
        else:
            out.append(item)
    return type(value)(out), raw


class _SharedMemory:
    """Tensors allocated in memfd shared memory (large ones, on Linux), each with its fd."""

    def __init__(self):
        self.fds: dict[int, int] = {}  # data_ptr -> memfd

    def empty(self, shape, dtype) -> torch.Tensor:
        import math
        import mmap

        size = math.prod(shape) * dtype.itemsize
        if not _MEMFD or size < _RAW_MIN_BYTES:
            return torch.empty(shape, dtype=dtype)
        fd = os.memfd_create("clbench-phase", os.MFD_CLOEXEC)
        os.ftruncate(fd, size)
        tensor = torch.frombuffer(mmap.mmap(fd, size), dtype=torch.uint8).view(dtype).reshape(shape)
        self.fds[tensor.data_ptr()] = fd
        return tensor

    def fd_of(self, tensor: torch.Tensor) -> int | None:
        return self.fds.get(tensor.data_ptr()) if tensor.is_contiguous() else None

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def _send_announced(sock, tensors, shared: _SharedMemory | None = None) -> None:
    """Send the tensors `_split_raw` announced, each the way its placeholder says: the memfd
    it already lives in, a new memfd holding a copy, or (not Linux) raw bytes."""
    if not _MEMFD:
        return _send_raw(sock, tensors)
    import socket

    for tensor in tensors:
        fd = shared.fd_of(tensor) if shared is not None else None
        if fd is None:
            copy = _SharedMemory()
            try:
                target = copy.empty(tuple(tensor.shape), tensor.dtype)
                target.copy_(tensor)
                socket.send_fds(sock, [b"t"], [copy.fd_of(target)])
            finally:
                copy.close()
        else:
            socket.send_fds(sock, [b"t"], [fd])


def _receive_shared(sock, shape, dtype) -> torch.Tensor:
    """Map the memfd the harness process sent: the tensor's memory, nothing copied."""
    import mmap
    import socket

    _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    if len(fds) != 1:
        raise EOFError("the harness process sent no shared memory where it announced some")
    try:
        shared = mmap.mmap(fds[0], os.fstat(fds[0]).st_size)
    finally:
        os.close(fds[0])
    flat = torch.frombuffer(shared, dtype=torch.uint8)  # keeps the mapping alive
    return flat.view(dtype).reshape(shape)


def _join_raw(value, sock):
    """Receive the tensors `_split_raw` announced in `value` and put them back in place."""
    if not isinstance(value, (tuple, list)):
        return value
    out = []
    for item in value:
        if isinstance(item, dict) and "raw" in item:
            if item["via"] == "memfd":
                item = _receive_shared(sock, item["shape"], item["dtype"])
            else:
                tensor = torch.empty(item["shape"], dtype=item["dtype"])
                _receive_raw_into(sock, [tensor])
                item = tensor
        out.append(item)
    return type(value)(out)


# --------------------------------------------------------------------------------------
# the method-process side


class HarnessClient:
    """The method process's handle on its harness process (one per process, reused by runs)."""

    def __init__(self):
        self._process, self._conn = _spawn("_serve_fd", "clbench-harness")
        self._raw = _raw_socket(self._conn)
        self._lock = threading.Lock()
        #: Seconds spent on the isolation itself (round trips minus the harness's own
        #: work, which an in-process harness would do too); see benchmarks/isolation_overhead.py.
        self.overhead_s = 0.0

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def request(self, message: dict, raw: tuple[torch.Tensor, ...] = ()):
        """Send `message` (and `raw` tensors as raw bytes after it); return the reply's value."""
        with self._lock:
            started = time.perf_counter()
            try:
                self._conn.send_bytes(_encode(message))
                _send_raw(self._raw, raw)
                while not self._conn.poll(_POLL_S):
                    if self._process.poll() is not None:
                        raise HarnessProcessFailure(
                            f"the harness process died (exit code {self._process.returncode})")
                reply = _receive_trusted(self._conn)
                if "value" in reply:
                    reply["value"] = _join_raw(reply["value"], self._raw)
            except (EOFError, BrokenPipeError, ConnectionResetError):
                raise HarnessProcessFailure("the harness process died") from None
            self.overhead_s += time.perf_counter() - started - reply.get("work_s", 0.0)
        if "error" in reply:
            kind, text = reply["kind"], reply["error"]
            if kind == "user":
                from . import errors

                cls = getattr(errors, reply.get("class", ""), ClbenchError)
                raise (cls if isinstance(cls, type) and issubclass(cls, ClbenchError) else ClbenchError)(text)
            if kind == "refused":
                raise IsolationRefused(text)
            if kind == "model":
                raise RunFailure(text)
            raise HarnessProcessFailure(text)
        return reply["value"]

    def close(self) -> None:
        """Stop the harness process. It holds nothing worth a clean exit (no files open for
        writing), so it is killed rather than left to tear down torch for seconds."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._raw.close()


_CLIENT: HarnessClient | None = None


def harness() -> HarnessClient:
    """This process's harness process, started on first use (and again if it died)."""
    global _CLIENT
    if _CLIENT is None or not _CLIENT.alive:
        _CLIENT = HarnessClient()
    return _CLIENT


@atexit.register
def stop_harness() -> None:
    """Stop this process's harness process; the next request starts a fresh one, which
    sees the environment as it is then (tests that change dataset settings rely on it)."""
    global _CLIENT
    if _CLIENT is not None:
        _CLIENT.close()
        _CLIENT = None


def start_harness(wait: bool = False) -> None:
    """Start the harness process now: before a sandbox restricts this process, or early,
    so that its start-up overlaps with this process importing Avalanche and the plugins."""
    client = harness()
    if wait:
        client.request({"op": "ping"})


def preload(benchmark, data_root: Path) -> None:
    """Read the benchmark's dataset in the harness process (a ClbenchError if it is missing),
    so that a missing dataset fails before anything is written, without this process
    ever holding the data."""
    harness().request({"op": "preload", "benchmark": benchmark.model_dump_json(),
                       "data_root": os.path.abspath(data_root)})


class HarnessSession:
    """One run's view of the harness process: phase data in, accuracies out."""

    def __init__(self, protocol, data_root: Path, seed: int, device: torch.device,
                 start_phase: int, reference_model: torch.nn.Module, sandbox: list[str] | None = None):
        self._client = harness()
        self._reference = (type(reference_model),
                           [(k, tuple(v.shape), v.dtype) for k, v in reference_model.state_dict().items()])
        self._client.request({
            "op": "open", "protocol": protocol.model_dump_json(), "data_root": os.path.abspath(data_root),
            "seed": int(seed), "device": str(device), "threads": torch.get_num_threads(),
            "start_phase": int(start_phase), "sandbox": list(sandbox or []),
            "sys_path": [p for p in __import__("sys").path if isinstance(p, str)],
        })

    def phase(self, phase: int):
        """The training data of `phase` (the harness hands out phases in order only)."""
        from .tasks import PhaseData

        x, y, origin, counts = self._client.request({"op": "phase", "phase": int(phase)})
        return PhaseData(x, y, origin, tuple(counts))

    def _model(self, model: torch.nn.Module) -> tuple[dict, list[torch.Tensor]]:
        """The model as the harness process takes it, and the tensors that follow as raw bytes."""
        cls, layout = self._reference
        state = model.state_dict()
        if type(model) is cls and [(k, tuple(v.shape), v.dtype) for k, v in state.items()] == layout:
            return {"kind": "raw_state", "keys": list(state), "shapes": [list(v.shape) for v in state.values()],
                    "dtypes": [str(v.dtype).removeprefix("torch.") for v in state.values()]}, list(state.values())
        if type(model) is cls and {k: tuple(v.shape) for k, v in state.items()} == {k: s for k, s, _ in layout}:
            return {"kind": "state_dict", "state": {k: v.detach().cpu() for k, v in state.items()}}, []
        buffer = io.BytesIO()
        try:
            torch.save(model, buffer)
        except Exception as exc:
            raise RunFailure(f"the strategy's model ({type(model).__name__}) cannot be sent to "
                             f"the predictor process: {type(exc).__name__}: {exc}") from None
        return {"kind": "module", "blob": torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)}, []

    def score_all(self, model: torch.nn.Module) -> list[float]:
        """Accuracy of `model` on every task's test set."""
        sent, raw = self._model(model)
        return self._client.request({"op": "score_all", "model": sent}, raw)

    def curve_point(self, model: torch.nn.Module, task: int) -> float:
        """Accuracy of `model` on the held-out curve samples of `task` (the current phase's)."""
        sent, raw = self._model(model)
        return self._client.request({"op": "curve", "task": int(task), "model": sent}, raw)

    def close(self) -> None:
        if self._client.alive:
            try:
                self._client.request({"op": "close"})
            except (HarnessProcessFailure, IsolationRefused):
                pass


# --------------------------------------------------------------------------------------
# the harness-process side


class _Schedule:
    """What the harness process will answer next for one run."""

    def __init__(self, n_tasks: int, curve_points: int, start_phase: int):
        self.n_tasks = n_tasks
        self.curve_budget = 4 * (curve_points + 2)
        self.next_phase = start_phase
        self.current: int | None = None
        self.curves_left = 0
        self.untrained_pending = start_phase == 0

    def take_phase(self, phase: int) -> None:
        if self.untrained_pending:
            raise _Refused("phase data asked for before the untrained model was measured")
        if self.current is not None:
            raise _Refused(f"phase {phase} asked for before phase {self.current} was evaluated")
        if phase != self.next_phase:
            raise _Refused(f"phase {phase} asked for; the next phase is {self.next_phase}")
        self.current, self.next_phase = phase, phase + 1
        self.curves_left = self.curve_budget

    def take_curve(self, task: int) -> None:
        if self.current is None or task != self.current:
            raise _Refused(f"learning-curve point for task {task} outside its phase")
        if self.curves_left <= 0:
            raise _Refused(f"more than {self.curve_budget} learning-curve points in phase {task}")
        self.curves_left -= 1

    def take_score_all(self) -> None:
        if self.untrained_pending:
            self.untrained_pending = False
            return
        if self.current is None:
            raise _Refused("an evaluation of every task outside the end of a phase")
        self.current = None


class _Refused(Exception):
    pass


class _ModelError(Exception):
    pass


class _Run:
    """One open run in the harness process: its tasks, test sets and schedule."""

    def __init__(self, message: dict, predictor: "_PredictorHandle"):
        from .evaluation import TaskEvaluator
        from .models import build_model
        from .models.build import place
        from .protocol import Protocol
        from .tasks import load_tasks

        self.protocol = Protocol.model_validate_json(message["protocol"])
        torch.set_num_threads(int(message["threads"]))
        self.device = torch.device(message["device"])
        self.seed = int(message["seed"])
        tasks = load_tasks(self.protocol.benchmark, Path(message["data_root"]), self.seed)
        self.matrix = self.protocol.env_matrix(self.seed)
        self.train = [(t.train_x, t.train_y) for t in tasks]
        evaluation = self.protocol.evaluation
        self.evaluator = TaskEvaluator(tasks, evaluation.batch_size, self.device,
                                       evaluation.curve_test_samples,
                                       task_aware=self.protocol.benchmark.scenario == "task")
        self.model = place(build_model(self.protocol.model, self.protocol.benchmark),
                           self.protocol.model, self.device)
        self.schedule = _Schedule(self.protocol.benchmark.n_tasks, evaluation.curve_points,
                                  int(message["start_phase"]))
        self.predictor = predictor
        self.shared = _SharedMemory()  # the current phase's tensors, handed over as memfds
        self.sandbox = list(message.get("sandbox") or [])
        self.sys_path = list(message.get("sys_path") or [])
        self._predictor_ready = False

    def phase(self, phase: int):
        from .tasks import Task, phase_data

        self.schedule.take_phase(phase)
        # phase_data reads only the training pools; hand it tasks without test data
        pools = [Task(x, y, x[:0], y[:0], ()) for x, y in self.train]
        self.shared.close()  # the previous phase's, long since mapped by the method's process
        data = phase_data(pools, self.matrix[phase], phase, self.seed, empty=self.shared.empty)
        return (data.x, data.y, data.origin, list(data.counts))

    def _load_state(self, state: dict) -> torch.nn.Module:
        try:
            self.model.load_state_dict(state, strict=True)
        except (RuntimeError, KeyError, TypeError) as exc:
            raise _ModelError(f"the model's weights do not fit the protocol's architecture: "
                              f"{str(exc).splitlines()[0]}") from None
        return self.model

    def _predictions(self, blob: torch.Tensor, which: str, task: int | None) -> list[torch.Tensor]:
        if not self._predictor_ready:
            self.predictor.open_run(self.evaluator, self.device, self.sandbox, self.sys_path)
            self._predictor_ready = True
        return self.predictor.predict(blob, which, task)

    def score_all(self, model: dict) -> list[float]:
        self.schedule.take_score_all()
        if model["kind"] == "state_dict":
            return self.evaluator.all_tasks(self._load_state(model["state"]))
        predictions = self._predictions(model["blob"], "all", None)
        return [_accuracy(p, y) for p, (_, y) in zip(predictions, self.evaluator.test_sets)]

    def curve(self, task: int, model: dict) -> float:
        self.schedule.take_curve(task)
        if model["kind"] == "state_dict":
            return self.evaluator.curve_point(self._load_state(model["state"]), task)
        (prediction,) = self._predictions(model["blob"], "curve", task)
        return _accuracy(prediction, self.evaluator.curve_sets[task][1])


def _accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    if predictions.shape != labels.shape:
        raise _ModelError(f"the predictor returned {tuple(predictions.shape)} predictions "
                          f"for {tuple(labels.shape)} labels")
    return (predictions.to(labels.device) == labels).sum().item() / len(labels)


#: dtypes a model's state may arrive in as raw bytes (anything else takes the pickled path).
_RAW_DTYPES = {name: getattr(torch, name) for name in (
    "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")}
#: Most bytes of model state one request may announce (a bound, not a typical size).
_MAX_STATE_BYTES = 16 << 30


class _StreamBroken(Exception):
    """The raw bytes announced by a message could not be read: the stream is out of step."""


def _receive_state(sock, model: dict) -> dict:
    """Read the raw tensors a `raw_state` message announces into a CPU state dict.

    The announced layout only says how many bytes to read and into what dtype: the
    state is then loaded with `load_state_dict(strict=True)` into the harness's own
    architecture, which checks every key and shape. No byte is interpreted as code.
    """
    try:
        keys, shapes, dtypes = list(model["keys"]), list(model["shapes"]), list(model["dtypes"])
        if not (len(keys) == len(shapes) == len(dtypes)) or not all(isinstance(k, str) for k in keys):
            raise ValueError("keys, shapes and dtypes differ in length")
        tensors = [torch.empty([int(d) for d in shape], dtype=_RAW_DTYPES[dtype])
                   for shape, dtype in zip(shapes, dtypes)]
        if sum(t.numel() * t.element_size() for t in tensors) > _MAX_STATE_BYTES:
            raise ValueError("more than the largest model state a request may announce")
        _receive_raw_into(sock, tensors)
    except Exception as exc:  # noqa: BLE001 - whatever it was, the stream cannot be trusted now
        raise _StreamBroken(f"a model state sent as raw bytes could not be read: {type(exc).__name__}: {exc}") from None
    return {"kind": "state_dict", "state": dict(zip(keys, tensors))}


def _serve_fd(fd: int, parent: int | None = None) -> None:
    """The harness process's loop: one request, one reply, until told to exit."""
    from .signals import die_with_parent

    die_with_parent(parent)
    conn = _connection(fd)
    sock = _raw_socket(conn)
    predictor = _PredictorHandle()
    run: _Run | None = None
    while True:
        try:
            blob = conn.recv_bytes()
        except (EOFError, OSError):
            break
        broken = False
        try:
            message = _decode(blob)
            model = message.get("model")
            if isinstance(model, dict) and model.get("kind") == "raw_state":
                message["model"] = _receive_state(sock, model)
            started = time.perf_counter()
            op = message.get("op")
            if op == "exit":
                break
            if op == "ping":
                value = None
            elif op == "open":
                if run is not None:
                    run.shared.close()
                run = None
                predictor.close_run()
                run = _Run(message, predictor)
                value = None
            elif op == "preload":
                from .protocol import BenchmarkSpec
                from .tasks import preload as read_dataset

                from .preflight import check_labels
                from .tasks import RAW_DATASET

                benchmark = BenchmarkSpec.model_validate_json(message["benchmark"])
                read_dataset(benchmark, Path(message["data_root"]))
                check_labels(RAW_DATASET[benchmark.name], Path(message["data_root"]))
                value = None
            elif run is None:
                raise _Refused(f"'{op}' without an open run")
            elif op == "phase":
                value = run.phase(int(message["phase"]))
            elif op == "score_all":
                value = run.score_all(message["model"])
            elif op == "curve":
                value = run.curve(int(message["task"]), message["model"])
            elif op == "close":
                if run is not None:
                    run.shared.close()
                run, value = None, None
                predictor.close_run()
            else:
                raise _Refused(f"unknown request '{op}'")
            # the work an in-process harness would do too (the decoding is isolation's cost)
            reply = {"value": value, "work_s": time.perf_counter() - started}
        except ClbenchError as exc:
            reply = {"error": str(exc), "kind": "user", "class": type(exc).__name__}
        except _Refused as exc:
            reply = {"error": f"the harness refused a measurement outside the protocol's "
                              f"schedule: {exc}", "kind": "refused"}
        except _ModelError as exc:
            reply = {"error": str(exc), "kind": "model"}
        except _StreamBroken as exc:  # answer, then exit: the next request starts a fresh process
            reply, broken = {"error": f"harness process: {exc}", "kind": "internal"}, True
        except Exception as exc:  # noqa: BLE001 - reported to the method process, which decides
            reply = {"error": f"harness process: {type(exc).__name__}: {exc}", "kind": "internal"}
        try:
            raw = []
            if "value" in reply:
                reply["value"], raw = _split_raw(reply["value"])
            _send(conn, reply)
            _send_announced(sock, raw, run.shared if run is not None else None)
        except (OSError, ValueError):
            break
        if broken:
            break
    predictor.shutdown()


# --------------------------------------------------------------------------------------
# the predictor process


class _PredictorHandle:
    """The harness process's predictor process, started on the first non-harness model."""

    def __init__(self):
        self._process = None
        self._conn = None

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def open_run(self, evaluator, device, sandbox: list[str], sys_path: list[str]) -> None:
        if not self._alive():
            self._process, self._conn = _spawn("_predict_fd", "clbench-predictor")
        inputs = [x.cpu() for x, _ in evaluator.test_sets]
        _send(self._conn, {"op": "open", "inputs": inputs, "curve": evaluator.curve_size,
                           "task_aware": evaluator.task_aware,
                           "batch_size": evaluator.batch_size, "device": str(device),
                           "sandbox": sandbox, "sys_path": sys_path})
        self._receive()

    def predict(self, blob: torch.Tensor, which: str, task: int | None) -> list[torch.Tensor]:
        _send(self._conn, {"op": "predict", "blob": blob, "which": which, "task": task})
        return self._receive()["predictions"]

    def _receive(self) -> dict:
        while not self._conn.poll(_POLL_S):
            if not self._alive():
                raise _ModelError(f"the predictor process died (exit code {self._process.returncode}) "
                                  "while running the method's model")
        reply = _decode(self._conn.recv_bytes())  # the predictor runs method code: no pickle
        if "error" in reply:
            raise _ModelError(f"the method's model failed in the predictor process: {reply['error']}")
        return reply

    def close_run(self) -> None:
        if self._alive():
            _send(self._conn, {"op": "close"})

    def shutdown(self) -> None:
        if self._alive():
            self._process.kill()


def _predict_fd(fd: int, parent: int | None = None) -> None:
    """Unpickle the method's model and predict on test inputs; never sees a label."""
    import sys

    from .signals import die_with_parent

    die_with_parent(parent)
    conn = _connection(fd)
    inputs, curve, batch_size, device, sandboxed, task_aware = [], None, 1024, "cpu", False, False
    while True:
        try:
            message = _receive_trusted(conn)  # from the harness process, which runs no method code
        except (EOFError, OSError):
            break
        try:
            if message["op"] == "open":
                inputs, curve = message["inputs"], message["curve"]
                task_aware = bool(message.get("task_aware"))
                batch_size, device = message["batch_size"], torch.device(message["device"])
                sys.path[:] = list(dict.fromkeys([*message["sys_path"], *sys.path]))
                if message["sandbox"] and not sandboxed:
                    from .sandbox import deny_paths

                    deny_paths(message["sandbox"])
                    sandboxed = True
                reply = {}
            elif message["op"] == "close":
                inputs = []
                continue
            else:
                model = torch.load(io.BytesIO(message["blob"].numpy().tobytes()), weights_only=False,
                                   map_location=device)
                model.eval()
                if message["which"] == "all":
                    chosen = list(enumerate(inputs))
                else:
                    x = inputs[message["task"]]
                    chosen = [(message["task"], x[:curve] if curve else x)]
                reply = {"predictions": [_predict(model, x, batch_size, device, t if task_aware else None)
                                         for t, x in chosen]}
        except Exception as exc:  # noqa: BLE001 - the method's model failed
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        conn.send_bytes(_encode(reply))


@torch.inference_mode()
def _predict(model, x: torch.Tensor, batch_size: int, device, task: int | None = None) -> torch.Tensor:
    """Predicted labels; `task`: the task label of every input (task-incremental protocols)."""
    from .evaluation import forward

    out = [forward(model, x[s:s + batch_size].to(device), task).argmax(dim=1).cpu()
           for s in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


if os.environ.get("CLBENCH_ISOLATION_DEBUG"):  # pragma: no cover - a developer aid
    import faulthandler

    faulthandler.enable()
