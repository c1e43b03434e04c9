"""Time-stamped action chunks executed at the controller rate. No ROS, no torch.

An inference worker turns one observation into a ``TimedChunk``: joint position targets for
the times ``t0 + k * dt`` (k = 0 .. H-1). A ``ChunkExecutor`` is asked for a command at any
time ``now`` (the control loop's tick) and answers from the chunks it holds:

* **Time, not index.** The command at ``now`` is the chunk linearly interpolated at ``now``.
  Actions whose time passed while inference ran are never executed (latency compensation);
  ``push`` counts them as skipped.
* **Transitions** (how a new chunk meets the one being executed):
  ``latest``             switch to the new chunk at once (a step when the two disagree);
  ``temporal_ensemble``  average every live chunk that covers ``now`` with ACT's weights
                         exp(-decay * i), i = 0 for the oldest (decay 0: plain mean);
  ``blend``              the new chunk, offset at its arrival by the gap between it and the
                         command being executed, the offset fading linearly to zero over
                         ``blend_s`` seconds: the command is continuous and then follows the
                         new chunk exactly.
* **Hold** (``sample`` returns None with the reason) when there is no chunk, when ``now`` is
  past the end of the newest chunk (inference slower than the chunk horizon: never execute
  stale or extrapolated actions), or when the newest chunk's observation is older than
  ``max_age_s``.
"""
import math
from dataclasses import dataclass

import numpy as np

TRANSITIONS = ('latest', 'temporal_ensemble', 'blend')


@dataclass(frozen=True)
class TimedChunk:
    t0: float                # time of positions[0] (s, the control loop's clock)
    dt: float                # spacing of the actions (s)
    positions: np.ndarray    # (H, J) joint position targets
    obs_time: float          # stamp of the observation it was predicted from

    def __post_init__(self):
        p = np.asarray(self.positions, np.float64)
        if p.ndim != 2 or p.shape[0] < 1:
            raise ValueError(f'chunk positions must be (H, J), got shape {p.shape}')
        if not np.all(np.isfinite(p)):
            raise ValueError('chunk positions must be finite')
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f'chunk dt must be finite and > 0, got {self.dt}')
        object.__setattr__(self, 'positions', p)

    @property
    def end(self):
        return self.t0 + (len(self.positions) - 1) * self.dt

    def covers(self, t):
        return self.t0 <= t <= self.end

    def at(self, t):
        """Linear interpolation at ``t``, clamped to the first / last target outside."""
        x = (t - self.t0) / self.dt
        if x <= 0:
            return self.positions[0].copy()
        k = int(x)
        if k >= len(self.positions) - 1:
            return self.positions[-1].copy()
        a = x - k
        return (1.0 - a) * self.positions[k] + a * self.positions[k + 1]

    def passed(self, t):
        """How many actions have times before ``t``."""
        return int(np.clip(math.floor((t - self.t0) / self.dt) + 1, 0, len(self.positions)))


def chunk_targets(q_obs, actions, action_type='delta'):
    """Joint targets of a chunk predicted at joint positions ``q_obs``: 'absolute' actions are
    the targets; 'delta' actions are per-step increments, so target k = q_obs + a_0 + .. + a_k
    (the arm at the observation plus the increments executed up to action k)."""
    actions = np.asarray(actions, np.float64)
    if action_type == 'absolute':
        return actions.copy()
    if action_type != 'delta':
        raise ValueError(f"action_type must be 'delta' or 'absolute', got {action_type!r}")
    return np.asarray(q_obs, np.float64)[None] + np.cumsum(actions, axis=0)


def check_chunk_settings(transition, blend_s, ensemble_decay, max_age_s):
    """ValueError with the reason when a chunk setting is invalid."""
    if transition not in TRANSITIONS:
        raise ValueError(f'transition must be one of {list(TRANSITIONS)}, got {transition!r}')
    if not (math.isfinite(blend_s) and blend_s > 0):
        raise ValueError(f'blend_s must be finite and > 0, got {blend_s}')
    if not (math.isfinite(ensemble_decay) and ensemble_decay >= 0):
        raise ValueError(f'ensemble_decay must be finite and >= 0, got {ensemble_decay}')
    if not (math.isfinite(max_age_s) and max_age_s > 0):
        raise ValueError(f'max_age_s must be finite and > 0, got {max_age_s}')


class ChunkExecutor:
    def __init__(self, transition='latest', blend_s=0.1, ensemble_decay=0.0, max_age_s=1.0):
        self.configure(transition, blend_s, ensemble_decay, max_age_s)
        self.clear()

    def configure(self, transition=None, blend_s=None, ensemble_decay=None, max_age_s=None):
        """Change settings (at run time too); refuses invalid values with the reason and
        leaves the executor unchanged."""
        t = self.transition if transition is None else transition
        b = self.blend_s if blend_s is None else float(blend_s)
        d = self.ensemble_decay if ensemble_decay is None else float(ensemble_decay)
        m = self.max_age_s if max_age_s is None else float(max_age_s)
        check_chunk_settings(t, b, d, m)
        self.transition, self.blend_s, self.ensemble_decay, self.max_age_s = t, b, d, m

    def clear(self):
        """Forget every chunk (disarm, new episode, clock jump): the next sample holds."""
        self.chunks = []          # live chunks, oldest first (newest = the one executed)
        self.offset = None        # blend: gap at the newest chunk's arrival, fading out
        self.blend_start = 0.0
        self.skipped = 0          # actions never executed because their time had passed

    @property
    def newest(self):
        return self.chunks[-1] if self.chunks else None

    def push(self, chunk: TimedChunk, now):
        """A new chunk arrives at ``now``. Returns how many of its actions were already due
        (skipped: latency compensation)."""
        skipped = chunk.passed(now) - 1 if chunk.covers(now) else chunk.passed(now)
        skipped = max(skipped, 0)
        self.skipped += skipped
        self.offset = None
        if self.transition == 'blend' and self.chunks:
            # continue from what was being executed at ``now`` (itself possibly a blend)
            self.offset = self._value(now) - chunk.at(now)
            self.blend_start = now
        self.chunks = [c for c in self.chunks if c.end >= now] + [chunk]
        if self.transition != 'temporal_ensemble':
            self.chunks = self.chunks[-1:]
        return skipped

    def sample(self, now):
        """(positions (J,), '') to command at ``now``, or (None, reason) to hold."""
        chunk = self.newest
        if chunk is None:
            return None, 'no action chunk yet'
        if now - chunk.obs_time > self.max_age_s:
            return None, (f'newest chunk is {now - chunk.obs_time:.3f} s old '
                          f'(max_chunk_age {self.max_age_s} s)')
        if now > chunk.end:
            return None, (f'chunk ran out {now - chunk.end:.3f} s ago: inference slower '
                          f'than the chunk horizon')
        return self._value(now), ''

    def _value(self, now):
        chunk = self.newest
        if chunk is None:
            return None
        if self.transition == 'temporal_ensemble':
            live = [c for c in self.chunks if c.covers(now)] or [chunk]
            w = np.exp(-self.ensemble_decay * np.arange(len(live)))
            return np.einsum('i,ij->j', w / w.sum(), np.stack([c.at(now) for c in live]))
        value = chunk.at(now)
        if self.offset is not None:
            fade = 1.0 - min(max((now - self.blend_start) / self.blend_s, 0.0), 1.0)
            value = value + fade * self.offset
        return value
