"""The execution settings, one validated definition (control/execution.py runs them)."""
import math
from dataclasses import asdict, dataclass, replace
from typing import ClassVar

from aura_ros.control.chunks import check_chunk_settings

EXECUTIONS = ('sync', 'async')


@dataclass(frozen=True)
class ExecutionConfig:
    """How commands are produced, validated here once. The policy node's parameters map onto
    the fields (``PARAMETERS``; params.py holds their ranges and docs); the benchmarks build it
    directly. Change settings with ``replace`` (validated; the old config is kept on error)."""
    kind: str = 'sync'                 # 'sync' | 'async'
    control_rate: float = 100.0        # async: commands per second
    action_period: float = 1 / 30      # async: time between a chunk's actions (s)
    transition: str = 'blend'          # async: control.chunks.TRANSITIONS
    blend_s: float = 0.1               # async blend: fade of the gap between chunks (s)
    ensemble_decay: float = 0.0        # async temporal_ensemble: weight exp(-decay i)
    max_age_s: float = 1.0             # async: hold instead of executing an older chunk (s)
    control_priority: int = 0          # async: SCHED_FIFO priority of the control thread
    open_loop_steps: int = 0           # async open_loop: actions run per chunk (0: all)

    # policy_node parameter -> field; RUNTIME: the fields a running execution takes changes of
    PARAMETERS: ClassVar[dict] = {
        'execution': 'kind', 'control_rate': 'control_rate',
        'chunk.action_period': 'action_period', 'chunk.transition': 'transition',
        'chunk.blend_s': 'blend_s', 'chunk.ensemble_decay': 'ensemble_decay',
        'chunk.max_age': 'max_age_s', 'control_priority': 'control_priority',
        'chunk.open_loop_steps': 'open_loop_steps'}
    RUNTIME: ClassVar[tuple] = ('control_rate', 'transition', 'blend_s', 'ensemble_decay',
                                'max_age_s', 'open_loop_steps')

    def __post_init__(self):
        if self.kind not in EXECUTIONS:
            raise ValueError(f'execution must be one of {list(EXECUTIONS)}, got {self.kind!r}')
        if not 1.0 <= float(self.control_rate) <= 500.0:
            raise ValueError(f'control_rate must be in [1, 500] Hz, got {self.control_rate}')
        if not (math.isfinite(self.action_period) and self.action_period > 0):
            raise ValueError(f'action_period must be finite and > 0, got {self.action_period}')
        if not 0 <= int(self.control_priority) <= 99:
            raise ValueError(f'control_priority must be in [0, 99], got '
                             f'{self.control_priority}')
        check_chunk_settings(self.transition, self.blend_s, self.ensemble_decay,
                             self.max_age_s, self.open_loop_steps)

    @classmethod
    def from_params(cls, p):
        """From a policy node's flat parameter values."""
        return cls(**{field: p[name] for name, field in cls.PARAMETERS.items()})

    def replace(self, **changes):
        return replace(self, **changes)

    def runtime(self):
        """The settings a running execution applies (``Execution.configure``)."""
        return {k: v for k, v in asdict(self).items() if k in self.RUNTIME}
