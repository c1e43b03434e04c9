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
                         new chunk exactly;
  ``lerobot_weighted``   LeRobot async inference's overlap merge (below): the new chunk's
                         actions still to come, 0.3 x the queue + 0.7 x new where the queue
                         holds the same timestep, and a new chunk is asked for only when the
                         queue is at most half a chunk;
  ``open_loop``          openpi's open-loop chunk (below): the chunk (its first
                         ``open_loop_steps`` actions; 0: all) runs from its arrival, then the
                         arm holds while the next chunk is inferred from the newest frame.
* **Hold** (``sample`` returns None with the reason) when there is no chunk, when ``now`` is
  past the end of the newest chunk (inference slower than the chunk horizon: never execute
  stale or extrapolated actions), or when the newest chunk's observation is older than
  ``max_age_s`` (``open_loop``: when the chunk started more than ``max_age_s`` ago, below).
* **Which frames are inferred** (``admit``): every frame for ``latest`` / ``temporal_ensemble``
  / ``blend`` (the worker takes the newest when it is free); the peers' transitions ask for
  chunks the way their clients do (below). ``AsyncPolicy.submit`` asks before it hands a frame
  to the worker.

The peers' handovers, as their users get them (issue 30), in this executor's terms (actions by
time, interpolated at the control rate; a chunk's action k is at ``t0 + k * dt``):

``lerobot_weighted``, from LeRobot 0.6.1 ``lerobot/async_inference``:
  * the merge, ``robot_client.py`` ``RobotClient._aggregate_action_queues`` with
    ``configs.py`` ``AGGREGATE_FUNCTIONS['weighted_average']`` = ``0.3 * old + 0.7 * new``.
    LeRobot keeps a queue of actions indexed by integer timestep and pops one per control
    tick; for each action of an arriving chunk: timestep <= the latest executed one -> dropped
    (here: time <= now); timestep held by the queue -> ``0.3 * queue + 0.7 * new``, where the
    queue's value is itself the result of earlier merges (the weights compound: the chunk
    before gets 0.3 x 0.7, ...); otherwise the new action as it is. The queue is then replaced
    by these actions only: queued actions past the new chunk's end are dropped, and a chunk
    whose actions all lie in the past empties the queue (the arm holds). Here "the queue holds
    the timestep" is: the action's time rounds to one of the queue's (within half a period of
    its first .. last action), the queue's value taken at that time (interpolated: the frame
    clock puts both chunks on nearly the same grid); the merged queue keeps the new chunk's
    times, plus, for the interpolation up to its first action, the value the queue had at
    the new chunk's last past action (what was being executed).
  * when a chunk is asked for, ``RobotClient._ready_to_send_observation``: an observation is
    sent (here: a frame admitted) while ``queue size / chunk size <= chunk_size_threshold``,
    its default 0.5 (``RobotClientConfig.chunk_size_threshold``; the chunk size is the largest
    received, ``action_chunk_size``); the queue size counts the actions whose time has not
    come.
  * LeRobot's ``latest_only`` (``lambda old, new: new``) is this executor's ``latest``
    transition: the new chunk's future actions replace the queue, its past ones are dropped
    (one sub-period detail: up to the new chunk's first future action ``latest`` interpolates
    from the new chunk's past action, LeRobot has the queue's action being executed). The
    other differences are not in the handover: LeRobot asks for chunks at the threshold above
    (``async_latest`` infers on every newest frame), executes one action per tick at the
    action rate without interpolation, and its server labels action i with timestep ``i_0 +
    i`` (``policy_server.py`` ``_time_action_chunk``, ``i_0`` = the latest executed timestep
    when the observation was taken), so its action 0 is always dropped and action i runs at
    about i periods after the observation, where the runner here puts action k at
    ``obs_time + (k + 1) * dt`` (every transition here gets the runner's timing). Not
    reproduced: the server skipping an observation whose joints are within ``atol=1`` of the
    last processed one (``helpers.py`` ``observations_similar``; robot units, degrees on the
    SO-100) unless the queue is empty (``must_go``).

``open_loop``, from openpi's client (``packages/openpi-client``): ``action_chunk_broker.py``
  ``ActionChunkBroker.infer`` calls the policy only when the current chunk is exhausted and then
  returns its actions one per control step, for ``action_horizon`` steps; the runtime
  (``runtime/runtime.py`` ``Runtime._step``: observe, ``get_action``, apply) blocks in the
  policy call, so the robot holds its last command while the next chunk is inferred, and no
  observation is taken meanwhile (``examples/libero/main.py`` does the same with
  ``replan_steps``: ``action_plan.extend(action_chunk[:replan_steps])``, a new chunk when the
  plan is empty). There is no library default for the prefix: each example picks one
  (``examples/aloha_sim/main.py``: ``action_horizon=10`` of pi0's 50; libero:
  ``replan_steps=5``); ``open_loop_steps`` is it here (0: the whole chunk). No blending, no
  latency compensation: the chunk is re-stamped to start at its arrival (its action 0 first).
  A frame is admitted once the last action has had its period (``now >= end + dt``, openpi
  observes at the step after applying it) and no chunk is awaited; ``max_age_s`` counts from
  the chunk's arrival (openpi has no such limit; the chunk is meant to run open loop for its
  length, and the age of its frame is reported, not held against it).
"""
import math
from dataclasses import dataclass

import numpy as np

TRANSITIONS = ('latest', 'temporal_ensemble', 'blend', 'lerobot_weighted', 'open_loop')
# lerobot/async_inference/configs.py AGGREGATE_FUNCTIONS['weighted_average']: 0.3 old + 0.7 new
LEROBOT_OLD_WEIGHT, LEROBOT_NEW_WEIGHT = 0.3, 0.7
# lerobot/async_inference/configs.py RobotClientConfig.chunk_size_threshold (its default)
LEROBOT_CHUNK_SIZE_THRESHOLD = 0.5


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


def check_chunk_settings(transition, blend_s, ensemble_decay, max_age_s, open_loop_steps=0):
    """ValueError with the reason when a chunk setting is invalid."""
    if transition not in TRANSITIONS:
        raise ValueError(f'transition must be one of {list(TRANSITIONS)}, got {transition!r}')
    if not (math.isfinite(blend_s) and blend_s > 0):
        raise ValueError(f'blend_s must be finite and > 0, got {blend_s}')
    if not (math.isfinite(ensemble_decay) and ensemble_decay >= 0):
        raise ValueError(f'ensemble_decay must be finite and >= 0, got {ensemble_decay}')
    if not (math.isfinite(max_age_s) and max_age_s > 0):
        raise ValueError(f'max_age_s must be finite and > 0, got {max_age_s}')
    if isinstance(open_loop_steps, bool) or int(open_loop_steps) != open_loop_steps \
            or open_loop_steps < 0:
        raise ValueError(f'open_loop_steps must be an integer >= 0, got {open_loop_steps}')


class ChunkExecutor:
    def __init__(self, transition='latest', blend_s=0.1, ensemble_decay=0.0, max_age_s=1.0,
                 open_loop_steps=0):
        self.configure(transition, blend_s, ensemble_decay, max_age_s, open_loop_steps)
        self.clear()

    def configure(self, transition=None, blend_s=None, ensemble_decay=None, max_age_s=None,
                  open_loop_steps=None):
        """Change settings (at run time too); refuses invalid values with the reason and
        leaves the executor unchanged."""
        t = self.transition if transition is None else transition
        b = self.blend_s if blend_s is None else float(blend_s)
        d = self.ensemble_decay if ensemble_decay is None else float(ensemble_decay)
        m = self.max_age_s if max_age_s is None else float(max_age_s)
        n = self.open_loop_steps if open_loop_steps is None else open_loop_steps
        check_chunk_settings(t, b, d, m, n)
        self.transition, self.blend_s, self.ensemble_decay, self.max_age_s = t, b, d, m
        self.open_loop_steps = int(n)

    def clear(self):
        """Forget every chunk (disarm, new episode, clock jump): the next sample holds."""
        self.chunks = []          # live chunks, oldest first (newest = the one executed)
        self.offset = None        # blend: gap at the newest chunk's arrival, fading out
        self.blend_start = 0.0
        self.skipped = 0          # actions never executed because their time had passed
        self.chunk_size = 0       # lerobot_weighted: the largest chunk received
        self.arrived = None       # open_loop: when the chunk being executed arrived
        self.awaiting = False     # open_loop: a frame was admitted, its chunk not yet here

    @property
    def newest(self):
        return self.chunks[-1] if self.chunks else None

    def admit(self, now):
        """Whether a frame seen at ``now`` should be inferred (the peers' transitions ask for
        chunks the way their clients do; the others take every frame). ``open_loop``: admitting
        one means a chunk is awaited (no other frame until it arrives, ``clear`` or
        ``inference_failed``)."""
        chunk = self.newest
        if self.transition == 'lerobot_weighted':
            if chunk is None or not self.chunk_size:
                return True
            left = len(chunk.positions) - chunk.passed(now)     # actions whose time is to come
            return left / self.chunk_size <= LEROBOT_CHUNK_SIZE_THRESHOLD
        if self.transition == 'open_loop':
            if self.awaiting or (chunk is not None and now < chunk.end + chunk.dt):
                return False
            self.awaiting = True
            return True
        return True

    def inference_failed(self):
        """The admitted frame gave no chunk: the next frame may be admitted."""
        self.awaiting = False

    def push(self, chunk: TimedChunk, now):
        """A new chunk arrives at ``now``. Returns how many of its actions were already due
        (skipped: latency compensation)."""
        if self.transition == 'lerobot_weighted':
            return self._push_lerobot(chunk, now)
        if self.transition == 'open_loop':
            return self._push_open_loop(chunk, now)
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

    def _push_lerobot(self, chunk, now):
        """LeRobot's ``_aggregate_action_queues`` with ``weighted_average`` (module doc)."""
        self.offset = None
        self.chunk_size = max(self.chunk_size, len(chunk.positions))
        queue = self.newest
        times = chunk.t0 + chunk.dt * np.arange(len(chunk.positions))
        first = int(np.searchsorted(times, now, side='right'))   # times <= now: dropped
        self.skipped += first
        if first == len(times):               # all in the past: the queue ends up empty
            self.chunks = []
            return first
        merged = chunk.positions[first:].copy()
        if queue is not None:
            half = 0.5 * queue.dt
            for i, t in enumerate(times[first:]):
                if queue.t0 - half <= t <= queue.end + half:   # the queue holds this timestep
                    merged[i] = LEROBOT_OLD_WEIGHT * queue.at(t) + LEROBOT_NEW_WEIGHT * merged[i]
        t0 = times[first]
        if first > 0:      # interpolate up to the first action from what was being executed
            executed = (queue.at(times[first - 1]) if queue is not None
                        else chunk.positions[first - 1])
            merged = np.vstack([executed[None], merged])
            t0 = times[first - 1]
        elif queue is not None:   # the chunk starts ahead of now: the queue runs on until then
            merged = np.vstack([queue.at(t0 - chunk.dt)[None], merged])
            t0 = t0 - chunk.dt
        self.chunks = [TimedChunk(t0, chunk.dt, merged, chunk.obs_time)]
        return first

    def _push_open_loop(self, chunk, now):
        """openpi's open-loop chunk (module doc): its first ``open_loop_steps`` actions (0:
        all) from its arrival on, action 0 first; nothing skipped."""
        steps = self.open_loop_steps or len(chunk.positions)
        self.offset = None
        self.awaiting = False
        self.arrived = now
        self.chunks = [TimedChunk(now, chunk.dt, chunk.positions[:steps], chunk.obs_time)]
        return 0

    def sample(self, now):
        """(positions (J,), '') to command at ``now``, or (None, reason) to hold."""
        chunk = self.newest
        if chunk is None:
            return None, 'no action chunk yet'
        if self.transition == 'open_loop' and self.arrived is not None:
            if now - self.arrived > self.max_age_s:
                return None, (f'open-loop chunk started {now - self.arrived:.3f} s ago '
                              f'(max_chunk_age {self.max_age_s} s)')
        elif now - chunk.obs_time > self.max_age_s:
            return None, (f'newest chunk is {now - chunk.obs_time:.3f} s old '
                          f'(max_chunk_age {self.max_age_s} s)')
        if now > chunk.end:
            if self.transition == 'open_loop':
                return None, 'open loop: chunk done, holding while the next one is inferred'
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
