"""Recorded episodes -> per-frame training samples: timestamp alignment and the action
convention. No ROS, no torch (bag reading and the backbone pass live elsewhere).

A recorded episode holds three streams on one clock (the bag's receive or header stamps, s):

    frames          t_f (F,)                 camera images
    joint states    t_j (N,), q (N, J)       the follower arm's measured positions
    demonstrations  t_d (M,), c (M, J)       the commanded positions of the teleop device or
                                             leader arm (what the expert asked the arm to do)

``align`` keeps a frame when a joint state and a demonstration both lie within ``tolerance``
seconds of it (the nearest of each; a demonstration is looked up at ``t_f + action_lag``, for
devices whose command follows the image by a known delay). Frames without a match are dropped
and counted by reason; when none survives, ``RecordingError`` reports the offsets found, so
a clock problem (two streams stamped on different clocks) reads as one.

``demonstrated_actions`` turns the matched pairs into the parameter file's convention, the one
``PolicyRunner`` applies (``command.action_type``):

    absolute   a_k = c_k                 the joint target itself
    delta      a_k = c_k - q_k           the step from the measured positions to the target
                                         (the runner commands q_k + a_k)
"""
from dataclasses import dataclass, field

import numpy as np


class RecordingError(ValueError):
    """A recording that cannot be turned into training samples; the message says why."""


@dataclass
class Aligned:
    frames: np.ndarray          # (K,) indices of the kept frames, increasing
    positions: np.ndarray       # (K, J) measured joint positions at those frames
    targets: np.ndarray         # (K, J) demonstrated joint positions at those frames
    dropped: dict = field(default_factory=dict)   # reason -> frames dropped
    offsets_s: dict = field(default_factory=dict)  # stream -> median |offset| of the matches


def _as_stream(times, values, name):
    t = np.asarray(times, np.float64)
    v = np.asarray(values, np.float64)
    if t.ndim != 1 or v.ndim != 2 or len(t) != len(v):
        raise RecordingError(f'{name}: expected times (N,) and values (N, J), got '
                             f'{t.shape} and {v.shape}')
    if len(t) and not np.all(np.isfinite(t)):
        raise RecordingError(f'{name}: non-finite timestamps')
    order = np.argsort(t, kind='stable')
    return t[order], v[order]


def nearest(times, query):
    """Index of the element of sorted ``times`` nearest to each query, and the offsets
    (query - times[index], s)."""
    times, query = np.asarray(times, np.float64), np.asarray(query, np.float64)
    right = np.clip(np.searchsorted(times, query), 1, len(times) - 1)
    left = right - 1
    pick = np.where(np.abs(query - times[left]) <= np.abs(times[right] - query), left, right)
    if len(times) == 1:
        pick = np.zeros(len(query), int)
    return pick, query - times[pick]


def align(frame_times, joint_times, joint_positions, demo_times, demo_positions,
          tolerance=0.05, action_lag=0.0):
    """Match every frame with the nearest joint state and demonstration (see the module)."""
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise RecordingError(f'tolerance must be > 0 s, got {tolerance}')
    t_f = np.asarray(frame_times, np.float64)
    if t_f.ndim != 1 or len(t_f) == 0:
        raise RecordingError('the episode has no frames')
    t_j, q = _as_stream(joint_times, joint_positions, 'joint states')
    t_d, c = _as_stream(demo_times, demo_positions, 'demonstrated commands')
    if len(t_j) == 0:
        raise RecordingError('the episode has no joint states')
    if len(t_d) == 0:
        raise RecordingError('the episode has no demonstrated commands')
    if q.shape[1] != c.shape[1]:
        raise RecordingError(f'joint states have {q.shape[1]} joints, demonstrated commands '
                             f'{c.shape[1]}')
    j_idx, j_off = nearest(t_j, t_f)
    d_idx, d_off = nearest(t_d, t_f + action_lag)
    has_j = np.abs(j_off) <= tolerance
    has_d = np.abs(d_off) <= tolerance
    keep = has_j & has_d
    dropped = {'no_joint_state': int(np.sum(~has_j)),
               'no_demonstration': int(np.sum(has_j & ~has_d))}
    if not keep.any():
        raise RecordingError(
            f'no frame has both a joint state and a demonstrated command within {tolerance} s: '
            f'median offset to the nearest joint state {np.median(np.abs(j_off)):.3f} s, to '
            f'the nearest command {np.median(np.abs(d_off)):.3f} s (streams on different '
            f'clocks? raise the tolerance or fix the stamps)')
    return Aligned(frames=np.flatnonzero(keep), positions=q[j_idx[keep]],
                   targets=c[d_idx[keep]], dropped=dropped,
                   offsets_s={'joint_states': float(np.median(np.abs(j_off[keep]))),
                              'demonstrations': float(np.median(np.abs(d_off[keep])))})


def demonstrated_actions(positions, targets, action_type='delta'):
    """(K, J) actions in the parameter file's convention (see the module)."""
    positions = np.asarray(positions, np.float64)
    targets = np.asarray(targets, np.float64)
    if positions.shape != targets.shape:
        raise RecordingError(f'positions {positions.shape} and targets {targets.shape} differ')
    if action_type == 'absolute':
        return targets.copy()
    if action_type == 'delta':
        return targets - positions
    raise RecordingError(f"action_type must be 'delta' or 'absolute', got {action_type!r}")
