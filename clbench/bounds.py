"""Bounds on every size a protocol controls, and the memory a protocol will need.

clbench holds every task's tensors in memory and builds the MLP a protocol sizes, so an
unchecked number (`benchmark.n_tasks=100000`, `model.hidden=[100000,100000]`) would run
the machine out of memory or time minutes into a run. Protocol validation checks each
bound here before any data is read, with a one-line error naming the field; the table
in docs/protocols.md lists them. Importing this module is cheap (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Tasks (and phases) of one protocol; records hold T x T matrices.
MAX_TASKS = 1000
#: Any sample count: a task's pool or test set, `new_samples`, a count-table entry.
MAX_SAMPLES = 1_000_000
#: Units of one hidden layer, hidden layers, and parameters of the whole MLP.
MAX_WIDTH = 100_000
MAX_DEPTH = 100
MAX_PARAMETERS = 100_000_000
#: Training and test minibatch sizes.
MAX_BATCH = 1_000_000
MAX_EPOCHS = 1000
#: Optimizer steps per phase under an iteration budget (`training.iterations`).
MAX_ITERATIONS = 1_000_000
#: Learning-curve points per phase.
MAX_CURVE_POINTS = 1000
#: Default seeds listed in a protocol.
MAX_SEEDS = 1000
#: Characters of a protocol's name (it becomes part of record file names) and description.
MAX_NAME = 100
MAX_DESCRIPTION = 2000
#: The memory estimate below may not exceed this: the largest preset (stinyimagenet-10)
#: needs about 7 GiB, and a protocol beyond this would need lazily built tasks.
MAX_MEMORY = 8 * 2**30

_FLOAT = 4  # float32 inputs, parameters and optimizer state
_LABEL = 8  # int64 labels and task-of-origin entries


def mlp_parameters(input_size: int, hidden: tuple[int, ...], n_classes: int, batch_norm: bool) -> int:
    """Parameters of clbench.models.build_model's MLP (weights, biases, BatchNorm affine)."""
    total, width = 0, input_size
    for units in hidden:
        total += width * units + units + (2 * units if batch_norm else 0)
        width = units
    return total + width * n_classes + n_classes


def optimizer_slots(optimizer: str, momentum: float) -> int:
    """Per-parameter tensors the optimizer keeps: Adam's two moments, SGD's momentum buffer."""
    if optimizer == "adam":
        return 2
    return 1 if momentum > 0 else 0


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes the harness itself holds for a run, by what holds them.

    dataset: the raw dataset as read (uint8 images, int64 labels), kept once per process;
    tasks: every task's standardised float32 training pool and test set, with labels;
    phase: the largest phase's training set (an upper bound for the stochastic kind);
    model: the MLP's parameters, their gradients and the optimizer's state.
    Not counted: Python and the imported libraries (torch and Avalanche take about
    0.8 GiB on a Linux CPU machine), a method's own buffers or model copies, activations,
    and copies made on an accelerator.
    """

    dataset: int
    tasks: int
    phase: int
    model: int

    @property
    def total(self) -> int:
        return self.dataset + self.tasks + self.phase + self.model

    def as_dict(self) -> dict[str, int]:
        return {"dataset": self.dataset, "tasks": self.tasks, "phase": self.phase,
                "model": self.model, "total": self.total}

    def describe(self) -> str:
        return (f"about {human_bytes(self.total)} (dataset {human_bytes(self.dataset)}, task "
                f"tensors {human_bytes(self.tasks)}, largest phase {human_bytes(self.phase)}, model "
                f"and optimizer {human_bytes(self.model)}; not counted: imported libraries, a "
                "method's own memory, activations)")


def estimate(*, dataset_images: int, image_bytes: int, n_tasks: int, pool: int, test_per_task: int,
             largest_phase: int, parameters: int, optimizer_slots: int) -> MemoryEstimate:
    """The estimate from plain sizes (image_bytes: one image's uint8 size = its input size)."""
    row = image_bytes * _FLOAT + _LABEL
    return MemoryEstimate(
        dataset=dataset_images * (image_bytes + _LABEL),
        tasks=n_tasks * (pool + test_per_task) * row,
        phase=largest_phase * (row + _LABEL),
        model=parameters * _FLOAT * (2 + optimizer_slots),
    )


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
