"""A planar 3-joint arm seen from above by a 64x64 RGB camera: a task that needs memory.

Episode ("cue, delay, go"), deterministic per seed:
  * 4 grey pads on slots drawn from an arc in front of the arm (layout shuffled per episode);
  * cue (``cue_steps`` frames): a white ring marks the target pad;
  * delay (``delay`` frames, 10-19): distractor marks (yellow rings) flash on other pads;
    in ``memory_hard`` they flash on the pads next to the target, twice as often;
  * go: the lamp in the top-left corner turns from red to green; only now does the arm move
    (before go, commands are ignored: the pose cannot carry the answer);
  * success: the end effector dwells ``dwell_steps`` frames on the target pad within
    ``max_steps_after_go``; dwelling on another pad, or running out of time, fails.
Variants: ``visible`` (the target ring stays on in every frame: no memory needed),
``memory``, ``memory_hard``, and ``colour`` (pads get distinct colours; the cue is a patch of
the target's colour at the lamp, not a ring: the cue names a colour, not a place).
Actions are joint deltas (rad per step); commands are joint positions; the arm moves at most
``max_joint_speed`` rad per step towards the commanded position. In real time (``integrate``)
the same limit is a speed: max_joint_speed * frame_rate rad/s, integrated at the physics rate.
"""
from dataclasses import dataclass, field

import numpy as np

VARIANTS = ('visible', 'memory', 'memory_hard', 'colour')
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
    cue_steps: int = 3
    delay: tuple = (10, 19)
    distractor_rate: float = 0.3     # chance of a distractor flash per delay frame
    max_steps_after_go: int = 30
    dwell_steps: int = 3
    max_joint_speed: float = 0.15

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f'variant must be one of {VARIANTS}, got {self.variant!r}')
        if not 16 <= self.image_size <= 512:
            raise ValueError('image_size must be in [16, 512]')


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
    target: int
    delay: int
    distractors: dict = field(default_factory=dict)  # frame index -> pad index


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
        target = int(rng.integers(N_PADS))
        delay = int(rng.integers(cfg.delay[0], cfg.delay[1] + 1))
        distractors = {}
        hard = cfg.variant == 'memory_hard'
        neighbours = [p for p in (target - 1, target + 1) if 0 <= p < N_PADS]
        others = [p for p in range(N_PADS) if p != target]
        rate = min(1.0, cfg.distractor_rate * (2 if hard else 1))
        for t in range(cfg.cue_steps, cfg.cue_steps + delay):
            if cfg.variant != 'visible' and rng.random() < rate:
                distractors[t] = int(rng.choice(neighbours if hard else others))
        self.episode = Episode(seed, pads, target, delay, distractors)
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
        return self.config.cue_steps + self.episode.delay

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
        """(pad -> colour) rings drawn on this frame, and the lamp colour."""
        cfg, ep, t = self.config, self.episode, self.t
        rings = {}
        cue = t < cfg.cue_steps or cfg.variant == 'visible'
        if cue and cfg.variant != 'colour':
            rings[ep.target] = (255, 255, 255)
        if t in ep.distractors:
            rings[ep.distractors[t]] = (255, 230, 0)
        lamp = (40, 220, 40) if self.unlocked else (200, 30, 30)
        return rings, lamp, cue

    def render(self):
        size = self.config.image_size
        img = np.full((size, size, 3), 40, np.uint8)
        world = self._world
        rings, lamp, cue = self.marks()
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
        if cue and self.config.variant == 'colour':  # colour cue next to the lamp
            img[:k, k:2 * k] = self.colours[self.episode.target]
        return img
