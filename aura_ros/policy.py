"""The control step, free of ROS: frozen backbone + gated memory -> safe joint command.

``PolicyRunner.step(image, positions)`` is one memory step: encode the frame (features), take
the next base action from the current action chunk (predicting a new chunk when the executed
part is used up), let the memory gate decide on a write and add its residual, then turn the
action into a joint position command through the ``CommandGuard`` (control/limits.py): finite,
inside the joint limits, within ``max_delta`` of the previous command, and after any hold
within ``max_delta`` of the measured position. The policy node and the in-process closed-loop
benchmark both run this class, so what is measured is what runs on the robot.
"""
import time
from dataclasses import dataclass

import numpy as np
import torch

from aura_ros.control.chunks import TimedChunk, chunk_targets
from aura_ros.control.limits import CommandGuard, CommandLimits

__all__ = ['CommandGuard', 'CommandLimits', 'PolicyRunner', 'PolicyStep']


@dataclass
class PolicyStep:
    command: np.ndarray | None   # (J,) joint positions to send, None = do not command
    action: np.ndarray           # (J,) composed action (base + residual)
    base_action: np.ndarray      # (J,) frozen policy's action
    wrote: bool
    gate_probability: float
    surprise: float
    backbone_ms: float           # encode (+ act when a new chunk was predicted)
    memory_ms: float             # gate + write + residual head
    total_ms: float
    new_chunk: bool
    rejected: str = ''           # why the command was withheld (non-finite action, ...)
    features: torch.Tensor | None = None  # (F,) backbone features of this frame
    memory_base: np.ndarray | None = None  # what the memory was given as base (a chunk memory:
    #                                        the chunk's first memory_horizon actions, flat)


class PolicyRunner:
    def __init__(self, backbone, memory, limits: CommandLimits, memory_enabled=True):
        self.backbone = backbone
        self.memory = memory          # MemoryPolicy or None (the frozen policy alone)
        self.limits = limits
        self.guard = CommandGuard(limits)   # one command per frame: no control period
        self.memory_enabled = memory_enabled
        cfg = backbone.config
        self.steps_per_chunk = cfg.steps_per_chunk
        # actions the memory corrects per step: 1, or a chunk memory's first ``horizon``
        # actions of every chunk (its action is the flattened (horizon, A) chunk)
        self.memory_horizon = 1
        if len(limits.lower) != cfg.action_dim:
            raise ValueError(f'{len(limits.lower)} joint limits for action_dim {cfg.action_dim}')
        if memory is not None:
            mc = memory.config
            if mc.feature_dim != backbone.feature_dim:
                raise ValueError(f'memory expects {mc.feature_dim}-d features, backbone '
                                 f'{cfg.adapter} gives {backbone.feature_dim}')
            horizon, rest = divmod(mc.action_dim, cfg.action_dim)
            if rest or not 1 <= horizon <= cfg.chunk_size:
                raise ValueError(f'memory acts in {mc.action_dim} dims: neither one action of '
                                 f'the backbone ({cfg.action_dim}) nor a chunk of up to '
                                 f'chunk_size={cfg.chunk_size} of them')
            self.memory_horizon = horizon
            # Warm up (compiles the fast step once) so the first real frame is not slow.
            memory.step(torch.zeros(mc.feature_dim), torch.zeros(mc.action_dim))
        self.reset()

    def reset(self, episode_seed=None):
        """New episode: empty memory state, no pending chunk, no previous command.
        ``episode_seed`` (int) makes the episode's random draws reproducible and the same in
        every arm: the chunk noise of a sampling backbone is seeded per (episode, step) and
        a scheduled memory draws its write schedule from the episode seed. None: fresh
        draws."""
        self._queue = []
        self.guard.release()
        self.episode_seed = episode_seed
        self.t = 0
        if self.memory is not None:
            self.memory.reset(episode_seed)

    def noise_seed(self):
        """Seed of the chunk predicted at this step (None without an episode seed)."""
        if self.episode_seed is None:
            return None
        state = np.random.SeedSequence([int(self.episode_seed), self.t]).generate_state(1)
        return int(state[0])

    def step(self, image, positions, instruction=''):
        t0 = time.perf_counter()
        positions = np.asarray(positions, np.float64)
        H = self.memory_horizon
        new_chunk = not self._queue or H > 1   # a chunk memory reads a fresh chunk each step
        encoding, chunk = self.backbone.infer(image, positions.astype(np.float32), instruction,
                                              want_chunk=new_chunk,
                                              noise_seed=self.noise_seed() if new_chunk
                                              else None)
        if new_chunk:  # predict a chunk, execute its first steps_per_chunk actions
            chunk = np.asarray(chunk, np.float32)
            self._queue = [a for a in chunk[:self.steps_per_chunk]]
            memory_base = chunk[:H].reshape(-1)
        base = np.asarray(self._queue.pop(0), np.float32)
        if H > 1:
            self._queue = []
        else:
            memory_base = base
        self.t += 1
        t1 = time.perf_counter()
        if self.memory is not None:
            out = self.memory.step(encoding.features, torch.from_numpy(memory_base))
            action = (out.action.numpy()[:len(base)] if self.memory_enabled else base)
            wrote, prob, surprise = out.wrote, out.gate_probability, out.surprise
        else:
            action, wrote, prob, surprise = base, False, 0.0, 0.0
        t2 = time.perf_counter()
        command, rejected = self.to_command(action, positions)
        t3 = time.perf_counter()
        return PolicyStep(command=command, action=np.asarray(action, np.float64),
                          base_action=base.astype(np.float64), wrote=wrote,
                          gate_probability=prob, surprise=surprise,
                          backbone_ms=1e3 * (t1 - t0), memory_ms=1e3 * (t2 - t1),
                          total_ms=1e3 * (t3 - t0), new_chunk=new_chunk, rejected=rejected,
                          features=encoding.features, memory_base=memory_base)

    def infer_chunk(self, image, positions, obs_time, dt, instruction=''):
        """Asynchronous execution: one observation -> (TimedChunk, PolicyStep). The backbone
        predicts a whole chunk; the memory takes one step (one per processed observation). A
        one-action memory corrects the chunk's first action and its residual is added to every
        action (the correction holds until the next observation); a chunk memory corrects
        its first ``memory_horizon`` actions one by one (later ones get the last residual).
        Targets are joint positions for the times obs_time + (k + 1) * dt (``dt`` = the period
        the actions were trained at); a non-finite chunk raises ValueError (the worker counts
        it, nothing is sent)."""
        t0 = time.perf_counter()
        positions = self.limits.measured(positions)
        if positions is None:
            raise ValueError('joint positions missing or not finite')
        encoding, chunk = self.backbone.infer(image, positions.astype(np.float32), instruction,
                                              want_chunk=True, noise_seed=self.noise_seed())
        chunk = np.asarray(chunk, np.float32)
        self.t += 1
        t1 = time.perf_counter()
        base, H = chunk[0], self.memory_horizon
        wrote, prob, surprise = False, 0.0, 0.0
        actions = chunk.astype(np.float64)
        if self.memory is not None:
            out = self.memory.step(encoding.features,
                                   torch.from_numpy(chunk[:H].reshape(-1).copy()))
            wrote, prob, surprise = out.wrote, out.gate_probability, out.surprise
            if self.memory_enabled:
                corrected = out.action.numpy().astype(np.float64).reshape(H, -1)
                residual = corrected - actions[:H]
                actions[:H] = corrected
                actions[H:] += residual[-1]    # past the memory's horizon: its last residual
        t2 = time.perf_counter()
        timed = TimedChunk(t0=obs_time + dt, dt=dt, obs_time=obs_time,
                           positions=chunk_targets(positions, actions,
                                                   self.limits.action_type))
        info = PolicyStep(command=None, action=actions[0], base_action=base.astype(np.float64),
                          wrote=wrote, gate_probability=prob, surprise=surprise,
                          backbone_ms=1e3 * (t1 - t0), memory_ms=1e3 * (t2 - t1),
                          total_ms=1e3 * (time.perf_counter() - t0), new_chunk=True,
                          features=encoding.features)
        return timed, info

    def to_command(self, action, positions):
        """Joint position command from an action, or (None, reason): through the guard (never
        NaN, never outside the limits, within max_delta of the previous command, or of the
        measured position after a hold)."""
        lim = self.limits
        action = np.asarray(action, np.float64)
        if action.shape != lim.lower.shape or not np.all(np.isfinite(action)):
            self.guard.release()
            return None, f'non-finite or mis-shaped action {action.tolist()}'
        positions = lim.measured(positions)
        if positions is None:
            self.guard.release()
            return None, 'joint positions missing or not finite'
        target = positions + action if lim.action_type == 'delta' else action
        return self.guard.command(target, positions), ''

    @property
    def last_command(self):
        return self.guard.previous

    def forget_commands(self):
        """A hold by silence (disarmed, deactivated): no pending chunk, and the next command
        starts from the measured positions."""
        self.guard.release()
        self._queue = []

    def hold(self, positions):
        """A hold begins (frames stopped, disarm): the hold command (the measured positions,
        clipped into the limits; None without them), no pending chunk; the next command starts
        from the measured positions then."""
        self._queue = []
        return self.guard.hold(positions)


def load_runner(p, base_dir):
    """The PolicyRunner a policy node's parameters describe (``p``: flat ``backbone.*``,
    ``memory.*`` and ``command.*`` values; relative paths from ``base_dir``) and one line
    saying what was loaded (backbone, memory kind and state size, checkpoint path and sha256).
    """
    import hashlib

    from aura_ros.backbones import BackboneConfig, build_backbone
    from aura_ros.core import load_memory
    from aura_ros.params import backbone_block
    from aura_ros.paths import resolve_path
    block = backbone_block({k: v for k, v in p.items() if k.startswith('backbone.')})
    backbone = build_backbone(BackboneConfig.from_dict(block), base_dir=base_dir)
    memory, source = None, '(memory.checkpoint is empty: the frozen policy alone)'
    try:
        if p['memory.checkpoint']:
            path = resolve_path(p['memory.checkpoint'], base_dir, kind='memory checkpoint')
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            source = f'from {path} (sha256 {digest[:16]})'
            memory = load_memory(path)
        runner = PolicyRunner(backbone, memory, CommandLimits.from_params(p))
    except BaseException:
        backbone.close()            # a server connection or model threads: not left behind
        raise
    return runner, (f"backbone {block['adapter']} ({backbone.feature_dim}-d features), memory "
                    f"{memory.config.kind if memory else 'none'} "
                    f"({memory.state_bytes() if memory else 0} B state) {source}")
