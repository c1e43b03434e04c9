"""Following a JointTrajectory the way ros2_control's joint_trajectory_controller does (no ROS).

What the simulated arm does with a position-only trajectory (the messages the policy node and
``sim_teleop`` send), as joint_trajectory_controller with its default spline interpolation does
when the points carry positions only:
- a new trajectory replaces the one being followed, at once (no queueing);
- its points are due ``time_from_start`` after its header stamp, or after its arrival when the
  stamp is zero;
- from the position commanded on arrival (the last sample of the trajectory it replaces, or
  the measured positions when there was none), the commanded position moves linearly to each
  point still ahead, reaching it when it is due (points already due on arrival are skipped:
  no jump to where a stamped trajectory "would be by now");
- after the last point it holds that point (a trajectory entirely in the past: its last point
  at once, where joint_trajectory_controller would refuse it).

This follower starts from the commanded position (joint_trajectory_controller's
``open_loop_control``); the servo's tracking error is the arm's, as on a robot.

A point with ``time_from_start`` 0 (``sim_teleop``'s) is commanded at once. The arm's own speed
limit (the servo's, ``ArmEnv``) applies on top, as on a robot.
"""
import numpy as np


class TrajectoryFollower:
    """The commanded joint positions over time, from the newest trajectory. One thread may
    ``set`` while another samples: the trajectory is replaced by one assignment."""

    def __init__(self):
        # (times (P + 1,): the start, then each point; points (P + 1, J): the position at the
        # start, then each point), or None
        self._trajectory = None

    def clear(self):
        self._trajectory = None

    def set(self, now, points, times_from_start, current, start=None):
        """Follow ``points`` (P, J) reached ``times_from_start`` (P,) s after ``start``
        (default ``now``), from the position commanded at ``now`` (or ``current``, the measured
        one, when nothing was commanded). Raises ValueError on a malformed trajectory."""
        points = np.asarray(points, np.float64)
        offsets = np.asarray(times_from_start, np.float64)
        if points.ndim != 2 or len(points) == 0 or offsets.shape != (len(points),):
            raise ValueError(f'trajectory: {points.shape} points for {offsets.shape} times')
        if not (np.all(np.isfinite(points)) and np.all(np.isfinite(offsets))):
            raise ValueError('trajectory: non-finite positions or times')
        if np.any(offsets < 0) or np.any(np.diff(offsets) < 0):
            raise ValueError(f'trajectory: times_from_start must be >= 0 and non-decreasing, '
                             f'got {offsets.tolist()}')
        start = now if start is None else float(start)
        here = self.sample(now)
        here = np.asarray(current, np.float64) if here is None else here
        if here.shape != points.shape[1:]:
            raise ValueError(f'trajectory: {points.shape[1]} joints, the arm has {len(here)}')
        due = start + offsets
        ahead = due > now
        if not ahead.any():                      # all due already: the last point at once
            self._trajectory = (np.array([now, now]), np.vstack([here, points[-1:]]))
            return
        self._trajectory = (np.concatenate([[now], due[ahead]]),
                            np.vstack([here, points[ahead]]))

    def sample(self, t):
        """The commanded position at time ``t`` (None before any trajectory)."""
        trajectory = self._trajectory
        if trajectory is None:
            return None
        times, points = trajectory
        if t >= times[-1]:
            return points[-1].copy()
        if t <= times[0]:
            return points[0].copy()
        k = int(np.searchsorted(times, t, side='right'))   # times[k - 1] <= t < times[k]
        span = times[k] - times[k - 1]
        w = (t - times[k - 1]) / span if span > 0 else 1.0
        return points[k - 1] + w * (points[k] - points[k - 1])

    def final(self):
        """The last point (lockstep: a frame's command), None before any trajectory."""
        trajectory = self._trajectory
        return None if trajectory is None else trajectory[1][-1].copy()
