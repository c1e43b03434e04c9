"""Parameter files edited as a user edits them, for the benchmarks that deploy a trained memory
through the nodes (train-from-recordings, closed-loop, mujoco)."""
from pathlib import Path

# A lockstep parameter file's policy node as on a robot: async execution at 100 Hz, the control
# thread under SCHED_FIFO 50 (the line and its replacement, for write_params_with).
ASYNC_EXECUTION = ('execution: sync', 'execution: async\n    control_rate: 100.0\n'
                   '    control_priority: 50\n    # was: execution: sync')


def write_params_with(source, out, replacements):
    """``source``'s text with each (line, new) replaced, written to ``out``: a parameter file
    as a user edits it. Each line must occur once (else RuntimeError naming it)."""
    text = Path(source).read_text()
    for line, new in replacements:
        if text.count(line) != 1:
            raise RuntimeError(f'{source}: expected one "{line.strip()}" line to replace')
        text = text.replace(line, new)
    Path(out).write_text(text)
    return Path(out)
