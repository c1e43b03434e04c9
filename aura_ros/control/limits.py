"""The safety promise of every joint command, in one place. No ROS, no torch.

``CommandLimits`` is the arm's envelope (joint limits, largest step, largest speed).
``CommandGuard`` is the one gate every command passes on its way to the arm, in both
executions (``control.execution``), in the benchmarks and in the node. Its rule:

* **After any hold** (frames stopped, joint states stale, disarm, deactivate, a new episode, a
  withheld action, a chunk that ran out: any moment the policy commanded nothing), the first
  command is within one step of the **measured** position, never of an old command.
* **Every other command** is within one step of the previous command.
  One step = ``max_delta``, and ``max_velocity * period`` where a period is given (async).
* Every command is finite and inside the joint limits.
* **No measured position, no command**: while joint states are missing, stale or not finite,
  nothing is sent (the controller holds its last goal, as joint_trajectory_controller does),
  and the next command starts over from the measured position.
* A hold command (``hold``) is the measured position itself, clipped into the limits.
"""
import math
from dataclasses import dataclass

import numpy as np


class NoJointStates(RuntimeError):
    """No fresh measured joint positions: nothing may be commanded (a step refused with this
    commanded nothing; the next command starts from the measured positions)."""


@dataclass
class CommandLimits:
    lower: np.ndarray          # (J,) rad
    upper: np.ndarray          # (J,) rad
    max_delta: float           # rad per step, relative to the previous command
    action_type: str = 'delta'  # 'delta': q_measured + action; 'absolute': action
    max_velocity: float = math.inf  # rad/s; with a control period dt the step is also
    #                                 at most max_velocity * dt

    def __post_init__(self):
        self.lower = np.asarray(self.lower, np.float64)
        self.upper = np.asarray(self.upper, np.float64)
        if self.lower.shape != self.upper.shape:
            raise ValueError('lower and upper joint limits differ in length')
        if np.any(~np.isfinite(self.lower)) or np.any(~np.isfinite(self.upper)):
            raise ValueError('joint limits must be finite')
        if np.any(self.lower >= self.upper):
            raise ValueError('every lower joint limit must be below its upper limit')
        if not (math.isfinite(self.max_delta) and self.max_delta > 0):
            raise ValueError('max_delta must be finite and > 0')
        if self.action_type not in ('delta', 'absolute'):
            raise ValueError("action_type must be 'delta' or 'absolute'")
        if not (self.max_velocity > 0):   # inf allowed (no velocity limit), NaN refused
            raise ValueError('max_velocity must be > 0')

    @classmethod
    def from_params(cls, p):
        """The limits of a policy node's parameters (``command.*`` keys of a flat dict; the
        joint names must match the limits in number)."""
        limits = cls(p['command.lower_limits'], p['command.upper_limits'], p['command.max_delta'],
                     p['command.action_type'], p['command.max_velocity'])
        names = p.get('command.joint_names')
        if names is not None and len(names) != len(limits.lower):
            raise ValueError(f'{len(names)} joint names but {len(limits.lower)} joint limits')
        return limits

    def set_rates(self, max_delta=None, max_velocity=None):
        """Run-time change of the step limits; ValueError (nothing changed) when invalid."""
        d = self.max_delta if max_delta is None else float(max_delta)
        v = self.max_velocity if max_velocity is None else float(max_velocity)
        if not (math.isfinite(d) and d > 0):
            raise ValueError(f'max_delta must be finite and > 0, got {d}')
        if not v > 0:
            raise ValueError(f'max_velocity must be > 0, got {v}')
        self.max_delta, self.max_velocity = d, v

    def measured(self, positions):
        """Measured joint positions as float64, or None when missing, mis-shaped or not
        finite (nothing may be commanded from them)."""
        if positions is None:
            return None
        positions = np.asarray(positions, np.float64)
        if positions.shape != self.lower.shape or not np.all(np.isfinite(positions)):
            return None
        return positions

    def hold_at(self, positions):
        """The hold command at measured positions (clipped into the limits), or None."""
        positions = self.measured(positions)
        return None if positions is None else np.clip(positions, self.lower, self.upper)

    def step(self, dt=None):
        """The largest change of one command (rad): max_delta, and max_velocity * dt."""
        return self.max_delta if dt is None else min(self.max_delta, self.max_velocity * dt)

    def clamp(self, target, reference, dt=None):
        """``target`` moved at most one step from ``reference``, then into the joint limits."""
        step = self.step(dt)
        return np.clip(np.clip(target, reference - step, reference + step),
                       self.lower, self.upper)


class CommandGuard:
    """The rule above, for one command stream (see the module docstring). ``period``: the
    control period of an async stream (its step is also limited by max_velocity * period);
    None for one command per frame."""

    def __init__(self, limits: CommandLimits, period=None):
        self.limits, self.period = limits, period
        self.previous = None    # the last command sent; None after a hold (start from measured)

    def command(self, target, positions):
        """The command for ``target`` given the measured ``positions``, or None (nothing is
        sent: no valid measurement, or a non-finite / mis-shaped target; both count as a
        hold, so the next command starts from the measured position)."""
        measured = self.limits.measured(positions)
        target = None if target is None else np.asarray(target, np.float64)
        if measured is None or target is None or target.shape != measured.shape or \
                not np.all(np.isfinite(target)):
            self.previous = None
            return None
        reference = self.previous if self.previous is not None else measured
        self.previous = self.limits.clamp(target, reference, self.period)
        return self.previous

    def hold(self, positions):
        """A hold begins: the hold command (the measured position, clipped into the limits;
        None without a valid measurement: send nothing). The next command starts from the
        measured position then."""
        self.previous = None
        return self.limits.hold_at(positions)

    def release(self):
        """A hold by silence (nothing sent): the next command starts from the measured
        position."""
        self.previous = None
