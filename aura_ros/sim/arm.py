"""A planar 3-joint arm seen from above by a 64x64 RGB camera: a task that needs memory.

Task v2, deterministic per seed (``ArmTaskConfig.cue_onset = 'random'``, the default):
  * 4 grey pads on slots drawn from an arc in front of the arm (layout shuffled per episode);
  * the go lamp (top-left corner) is red until frame ``go_step``, drawn uniformly from
    ``go`` (``go_switch`` in the switch variant); then green, and only now does the arm move
    (before go, commands are ignored: the pose cannot carry the answer);
  * the **cue**: a white ring marks a pad for ``cue_steps`` frames, starting at a random
    onset after 2 or more blank or distractor frames and no later than the middle of the
    time before go (``2 <= onset <= go_step // 2``): no clock that writes a fixed frame can
    catch it;
  * ``memory_switch`` adds, later before go, a **switch cue** (another pad, ``cue_steps``
    frames; the memory must update) and then the **re-shown** switch cue (the same pad again:
    a repeat, writing it changes nothing); the target is the last cued pad;
  * **distractors**: on every frame before go that shows no cue, with chance
    ``distractor_rate``, a yellow ring flashes on a pad other than the one cued so far (before
    the first cue: other than the first cue's pad); in ``memory_hard`` on its neighbours, twice
    as often;
  * success: the end effector dwells ``dwell_steps`` frames on the target pad within
    ``max_steps_after_go``; dwelling on another pad, or running out of time, fails.
Every frame has a ground-truth kind (``frame_kind``, ``FRAME_KINDS``): ``pre_cue`` (blank,
before the first cue), ``cue_onset`` (the first cue's first frame), ``cue_continued`` (a cue's
later frames), ``switch_cue`` and ``reshown_cue`` (their first frames), ``distractor``,
``delay`` (blank, after the first cue) and ``go``.
Variants: ``visible`` (the target ring stays on in every frame: no memory needed),
``memory``, ``memory_switch``, ``memory_hard``, and ``colour`` (pads get distinct colours; the
cue is a patch of the target's colour at the lamp, not a ring: the cue names a colour).
``cue_onset = 'first'`` is the earlier task (the cue on frames 0 .. cue_steps-1, then a delay
of ``delay`` frames with distractors, then go): the real-time benchmark's task
(``RealtimeTask``), kept so its results stay comparable.
Actions are joint deltas (rad per step); commands are joint positions; the arm moves at most
``max_joint_speed`` rad per step towards the commanded position. In real time (``integrate``)
the same limit is a speed: max_joint_speed * frame_rate rad/s, integrated at the physics rate.
"""
from dataclasses import dataclass, field

import numpy as np

VARIANTS = ('visible', 'memory', 'memory_switch', 'memory_hard', 'colour')
FRAME_KINDS = ('pre_cue', 'cue_onset', 'cue_continued', 'reshown_cue', 'switch_cue',
               'distractor', 'delay', 'go')
NEWS_KINDS = ('cue_onset', 'switch_cue')    # the frames that carry news (a cue oracle writes)
CUE_ONSETS = ('random', 'first')
LINKS = np.array([0.5, 0.45, 0.25])
BASE = np.array([0.0, -0.95])
HOME = np.array([np.pi / 2, -2.5, 2.5])   # folded: the effector starts inside the pad arc
JOINT_LOWER = np.array([-0.6, -2.6, -2.6])
JOINT_UPPER = np.array([np.pi + 0.6, 2.6, 2.6])
# Candidate pad centres on an arc in front of the base (world units, the image spans [-1, 1]).
SLOTS = np.array([BASE + 0.95 * np.array([np.cos(a), np.sin(a)])
                  for a in np.linspace(np.radians(25), np.radians(155), 6)])
PAD_COLOURS = np.array([[220, 60, 60], [60, 200, 60], [70, 110, 240], [230, 200, 40]], np.uint8)
PAD_RADIUS = 0.13
N_PADS = 4
JOINT_NAMES = ('joint_1', 'joint_2', 'joint_3')


@dataclass
class ArmTaskConfig:
    variant: str = 'memory'
    image_size: int = 64
    cue_steps: int = 3               # frames each cue stays on
    cue_onset: str = 'random'        # 'random': task v2; 'first': the cue on frame 0 (earlier)
    go: tuple = (18, 30)             # v2: the go frame, uniform (plain variants)
    go_switch: tuple = (30, 40)      # v2: the go frame in memory_switch (room for three cues)
    delay: tuple = (10, 19)          # 'first': frames between the cue's end and go
    distractor_rate: float = 0.3     # chance of a distractor flash per frame without a cue
    max_steps_after_go: int = 30
    dwell_steps: int = 3
    max_joint_speed: float = 0.15

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f'variant must be one of {VARIANTS}, got {self.variant!r}')
        if self.cue_onset not in CUE_ONSETS:
            raise ValueError(f'cue_onset must be one of {CUE_ONSETS}, got {self.cue_onset!r}')
        if not 16 <= self.image_size <= 512:
            raise ValueError('image_size must be in [16, 512]')
        c = self.cue_steps
        if self.cue_onset == 'random':
            if not 4 + 2 * c <= self.go[0] <= self.go[1]:
                raise ValueError(f'go must be (lo, hi) with {4 + 2 * c} <= lo <= hi, got '
                                 f'{self.go}')
            if not 4 * c + 16 <= self.go_switch[0] <= self.go_switch[1]:
                raise ValueError(f'go_switch must be (lo, hi) with {4 * c + 16} <= lo <= hi '
                                 f'(three cues, two apart), got {self.go_switch}')


def forward_kinematics(q):
    """(3,) joint angles -> (4, 2) base, elbow, wrist, end-effector positions."""
    angles = np.cumsum(q)
    steps = LINKS[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return np.vstack([BASE, BASE + np.cumsum(steps, axis=0)])


def inverse_kinematics(target):
    """Joint angles reaching ``target`` with the last link pointing away from the base."""
    direction = target - BASE
    phi = np.arctan2(direction[1], direction[0])
    wrist = target - LINKS[2] * np.array([np.cos(phi), np.sin(phi)])
    d = wrist - BASE
    r2 = float(d @ d)
    c2 = np.clip((r2 - LINKS[0] ** 2 - LINKS[1] ** 2) / (2 * LINKS[0] * LINKS[1]), -1, 1)
    q2 = -np.arccos(c2)   # elbow to the right, seen from the base
    q1 = np.arctan2(d[1], d[0]) - np.arctan2(LINKS[1] * np.sin(q2),
                                             LINKS[0] + LINKS[1] * np.cos(q2))
    return np.array([q1, q2, phi - q1 - q2])


@dataclass
class Episode:
    seed: int
    pads: np.ndarray              # (4, 2) pad centres
    target: int                   # the pad to reach: the last one cued
    go_step: int                  # the frame the lamp turns green
    cues: tuple = ()              # ((onset frame, pad, kind of its first frame), ...)
    distractors: dict = field(default_factory=dict)  # frame index -> pad index
    cue_steps: int = 3

    @property
    def delay(self):
        """Frames between the first cue's end and go."""
        return self.go_step - self.cues[0][0] - self.cue_steps

    def cue_at(self, t):
        """(onset, pad, kind) of the cue shown at frame ``t``, or None."""
        for cue in self.cues:
            if cue[0] <= t < cue[0] + self.cue_steps:
                return cue
        return None

    def cued_target(self, t):
        """The pad the latest cue up to frame ``t`` named (-1 before the first cue)."""
        pads = [pad for onset, pad, _ in self.cues if onset <= t]
        return pads[-1] if pads else -1

    def frame_kind(self, t):
        """The ground-truth kind of frame ``t`` (one of FRAME_KINDS)."""
        if t >= self.go_step:
            return 'go'
        cue = self.cue_at(t)
        if cue is not None:
            return cue[2] if t == cue[0] else 'cue_continued'
        if t in self.distractors:
            return 'distractor'
        return 'pre_cue' if t < self.cues[0][0] else 'delay'


class ArmEnv:
    """One episode at a time: reset(seed) -> frame; step(command) -> frame, done.

    The task (episode drawing, cue/delay/go clock, dwell and success, expert) is written here
    once; an arm with other kinematics and rendering (``aura_ros.sim.mujoco_arm``) overrides
    the class attributes below, ``_reset_arm``, ``_track``, ``pad_under_effector``,
    ``goal_joints`` and ``render``."""

    slots, home, lower, upper = SLOTS, HOME, JOINT_LOWER, JOINT_UPPER   # pad slots, joints
    joint_names = JOINT_NAMES

    def __init__(self, config: ArmTaskConfig = None):
        self.config = config or ArmTaskConfig()
        size = self.config.image_size
        ys, xs = np.mgrid[0:size, 0:size]
        # pixel centres in world coordinates (y up)
        self._world = np.stack([(xs + 0.5) / size * 2 - 1, 1 - (ys + 0.5) / size * 2], -1)

    # ---- episode ----------------------------------------------------------------------------
    def reset(self, seed):
        cfg = self.config
        rng = np.random.default_rng(seed)
        pads = self.slots[np.sort(rng.choice(len(self.slots), N_PADS, replace=False))]
        first = int(rng.integers(N_PADS))
        c = cfg.cue_steps
        if cfg.cue_onset == 'first':          # the earlier task: the cue opens the episode
            go_step = c + int(rng.integers(cfg.delay[0], cfg.delay[1] + 1))
            cues = ((0, first, 'cue_onset'),)
        else:
            lo, hi = cfg.go_switch if cfg.variant == 'memory_switch' else cfg.go
            go_step = int(rng.integers(lo, hi + 1))
            onset = int(rng.integers(2, go_step // 2 + 1))
            cues = ((onset, first, 'cue_onset'),)
            if cfg.variant == 'memory_switch':
                second = int(rng.choice([p for p in range(N_PADS) if p != first]))
                switch = int(rng.integers(onset + c + 2, go_step - 2 * c - 2))
                reshown = int(rng.integers(switch + c + 1, go_step - c))
                cues += ((switch, second, 'switch_cue'), (reshown, second, 'reshown_cue'))
        episode = Episode(seed, pads, cues[-1][1], go_step, cues, {}, c)
        hard = cfg.variant == 'memory_hard'
        rate = min(1.0, cfg.distractor_rate * (2 if hard else 1))
        start = c if cfg.cue_onset == 'first' else 0
        for t in range(start, go_step):
            if cfg.variant == 'visible' or episode.cue_at(t) is not None:
                continue
            cued = episode.cued_target(t)
            cued = first if cued < 0 else cued
            if rng.random() < rate:
                neighbours = [p for p in (cued - 1, cued + 1) if 0 <= p < N_PADS]
                others = [p for p in range(N_PADS) if p != cued]
                episode.distractors[t] = int(rng.choice(neighbours if hard else others))
        self.episode = episode
        self.colours = (rng.permutation(PAD_COLOURS) if cfg.variant == 'colour'
                        else np.full((N_PADS, 3), 150, np.uint8))
        self._reset_arm()
        self.t = 0
        self.dwell = 0
        self.dwell_pad = -1
        self.done = False
        self.success = False
        self.reached = -1
        return self.render()

    def _reset_arm(self):
        self.q = self.home.copy()

    @property
    def n_joints(self):
        return len(self.home)

    @property
    def go_step(self):
        return self.episode.go_step

    @property
    def frame_kind(self):
        """The ground-truth kind of the frame the camera shows now (``render()``)."""
        return self.episode.frame_kind(self.t)

    @property
    def unlocked(self):
        return self.t >= self.go_step

    def end_effector(self):
        return forward_kinematics(self.q)[-1]

    def pad_under_effector(self):
        dist = np.linalg.norm(self.episode.pads - self.end_effector(), axis=1)
        i = int(np.argmin(dist))
        return i if dist[i] < PAD_RADIUS else -1

    def step(self, command, physics=True):
        """Apply a joint position command (ignored before go), advance one frame.
        ``physics=False``: the task's clock only (in real time ``integrate`` moves the arm)."""
        if self.done:
            raise RuntimeError('episode is over: call reset()')
        if physics:
            self._track(command, self.config.max_joint_speed)
        self.t += 1
        if self.unlocked:
            pad = self.pad_under_effector()
            self.dwell = self.dwell + 1 if pad >= 0 and pad == self.dwell_pad else int(pad >= 0)
            self.dwell_pad = pad
            if self.dwell >= self.config.dwell_steps:
                self.done, self.reached = True, pad
                self.success = pad == self.episode.target
            elif self.t - self.go_step >= self.config.max_steps_after_go:
                self.done = True
        return self.render(), self.done

    def integrate(self, command, dt, frame_rate):
        """Real time: track ``command`` for ``dt`` seconds at the per-frame speed limit spread
        over time (max_joint_speed * frame_rate rad/s); call ``step(None)`` once per frame for
        the task's clock. Commands are ignored before go, as in ``step``."""
        self._track(command, self.config.max_joint_speed * frame_rate * dt)

    def _accept(self, command):
        """The command as an array if the arm takes it (after go, one finite value per
        joint), else None."""
        if not self.unlocked or command is None:
            return None
        command = np.asarray(command, np.float64)
        ok = command.shape == (self.n_joints,) and np.all(np.isfinite(command))
        return command if ok else None

    def _track(self, command, max_step):
        """Move at most ``max_step`` rad per joint towards a valid command (after go only)."""
        command = self._accept(command)
        if command is not None:
            delta = np.clip(command - self.q, -max_step, max_step)
            self.q = np.clip(self.q + delta, self.lower, self.upper)

    def goal_joints(self, q):
        """Joint angles the expert steers to from ``q``: the effector on the target pad."""
        return inverse_kinematics(self.episode.pads[self.episode.target])

    def expert_step(self, delta):
        """One expert action towards a goal ``delta`` away: each joint capped at the speed."""
        speed = self.config.max_joint_speed
        return np.clip(delta, -speed, speed)

    def expert_action(self):
        """Scripted expert (knows the target): hold before go, then a capped joint-space step
        towards the inverse-kinematics solution for the target pad."""
        if not self.unlocked:
            return np.zeros(self.n_joints)
        return self.expert_step(self.goal_joints(self.q) - self.q)

    def expert_plan(self, horizon):
        """(horizon, 3): the expert's next actions if it drove the arm from now on (holding
        until the go frame), the label of an action chunk. ``expert_plan(1)[0]`` is
        ``expert_action()``."""
        q, plan = self.q.copy(), np.zeros((horizon, self.n_joints))
        for k in range(horizon):
            if self.t + k >= self.go_step:
                plan[k] = self.expert_step(self.goal_joints(q) - q)
                q = np.clip(q + plan[k], self.lower, self.upper)
        return plan

    # ---- rendering ----------------------------------------------------------------------------
    def marks(self):
        """(pad -> colour) rings drawn on this frame, the lamp colour, and the pad whose cue is
        shown (-1: none; in ``colour`` a patch of that pad's colour, not a ring)."""
        cfg, ep, t = self.config, self.episode, self.t
        rings = {}
        cue = ep.cue_at(t)
        shown = ep.target if cfg.variant == 'visible' else (cue[1] if cue else -1)
        if shown >= 0 and cfg.variant != 'colour':
            rings[shown] = (255, 255, 255)
        if t in ep.distractors:
            rings[ep.distractors[t]] = (255, 230, 0)
        lamp = (40, 220, 40) if self.unlocked else (200, 30, 30)
        return rings, lamp, shown

    def render(self):
        size = self.config.image_size
        img = np.full((size, size, 3), 40, np.uint8)
        world = self._world
        rings, lamp, shown = self.marks()
        for i, centre in enumerate(self.episode.pads):
            d = np.linalg.norm(world - centre, axis=-1)
            img[d < PAD_RADIUS] = self.colours[i]
            if i in rings:
                img[(d >= PAD_RADIUS) & (d < PAD_RADIUS + 0.07)] = rings[i]
        for a, b in zip(*(lambda p: (p[:-1], p[1:]))(forward_kinematics(self.q))):
            ab = b - a
            s = np.clip(((world - a) @ ab) / (ab @ ab), 0, 1)
            d = np.linalg.norm(world - (a + s[..., None] * ab), axis=-1)
            img[d < 0.035] = (120, 190, 255)
        ee = np.linalg.norm(world - self.end_effector(), axis=-1)
        img[ee < 0.06] = (255, 140, 0)
        k = max(2, size // 16)
        img[:k, :k] = lamp
        if shown >= 0 and self.config.variant == 'colour':  # colour cue next to the lamp
            img[:k, k:2 * k] = self.colours[shown]
        return img
