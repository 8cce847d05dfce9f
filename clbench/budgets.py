"""The protocol's per-phase budgets, as plain integers (no torch: records are checked with them).

`clbench.audit` enforces them while a run trains, `clbench.records` re-checks every audited
record against them when it is read, and `clbench check-plugin` reports them. Rules and
the reasons for them: docs/trust.md.
"""

from __future__ import annotations

#: Version of the rules below; stored in every audit block, so a rule change is visible.
RULES_VERSION = 1


def step_limit(epochs: int, batch_size: int, phase_samples: int, memory: int,
               iterations: int | None = None) -> int:
    """Most optimizer steps a phase may take: epochs x ceil((phase samples + memory) / batch).

    Methods that train on their memory as well (iCaRL, GDumb) get the memory's batches.
    Under an iteration budget (`training.iterations`) it is that many steps, whatever the
    phase's size: the harness ends every phase there.
    """
    if iterations is not None:
        return iterations
    return epochs * -(-(phase_samples + memory) // batch_size)


def forward_limit(epochs: int, batch_size: int, phase_samples: int, memory: int,
                  iterations: int | None = None) -> int:
    """Most training-mode forward samples a phase may use.

    Each allowed step may forward one minibatch plus, at most, the whole declared memory
    (replay, DER and ER-ACE add memory samples to each batch; GEM forwards every past
    phase's memory, A-GEM a reference batch), and one extra pass over the phase's data
    and the memory is allowed (warm-up forwards, statistics over the phase's data).
    """
    return (step_limit(epochs, batch_size, phase_samples, memory, iterations) * (batch_size + memory)
            + phase_samples + memory)


def stored_tolerance(memory: int) -> int:
    """Retained samples allowed beyond the declared memory: 1% of it, at least 1.

    Retained samples are counted exactly (unique byte-identical copies of training
    inputs), so honest methods stay within their declaration; the tolerance only absorbs
    rounding in a declaration, such as a per-class share rounded up.
    """
    return max(1, -(-memory // 100))


def stored_limit(memory: int) -> int:
    return memory + stored_tolerance(memory)
