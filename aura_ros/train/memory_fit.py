"""Training AURA-Mem (and the closed-loop baselines) on the frozen backbone's features.

Data: episodes of the memory variants driven by the scripted expert with action noise (and
optionally DAgger rounds driven by the memory policy itself), each step run through the same
PolicyRunner as the robot: backbone features, the frozen policy's chunked base action, and the
expert's action as the label. The memory learns the residual that turns the base action into
the expert's, in units of the backbone's action std, with the closed-loop action objective
(core.training): the gate is rewarded for writes that improve the next action.
"""
from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from aura_ros.core import AuraConfig, build_memory
from aura_ros.core.training import Batch, TrainSchedule, train_memory
from aura_ros.policy import PolicyRunner
from aura_ros.sim.arm import ArmTaskConfig
from aura_ros.sim.engines import make_env
from aura_ros.sim.rollout import sim_limits

TRAIN_VARIANTS = ('memory', 'memory_switch', 'memory_hard')
# Gaussian noise added to the training features, in units of their std (TrainSchedule). Without
# it, on 40 recorded episodes every memory arm memorised the operator's noise: always_write's
# training error fell to 1/40 of the label noise's variance, its validation error rose above
# no_memory's, and AURA's gate, rewarded for those writes, opened on 76% of frames (bench/notes.md,
# "A selective gate from recordings"). Chosen on that calibration recording among 0.3, 1, 2.
FEATURE_NOISE = 1.0
# The warm-up writes each step with chance 1/2 (TrainSchedule.warmup_gate 'random'), not every
# step: after an 'open' warm-up the head could not act on an empty memory, so unmaking the
# first write of an episode looked worth ~4,000 loss units (a cue onset's write ~20-30) and the
# gate wrote frame 0 of every episode; after a random one, the first write is judged by what it
# holds. A write is priced WRITE_COST: the later action error it must remove, in units of one
# step's action variance (the errors are divided by the action std) -- not the robot's units.
# Both chosen on the calibration recording (50 episodes, its validation split and 100 closed-loop
# calibration episodes; bench/notes.md, "A selective gate from recordings").
WARMUP_GATE = 'random'
WRITE_COST = 5.0


@dataclass
class FeatureEpisode:
    features: torch.Tensor   # (T, F)
    base: torch.Tensor       # (T, A) frozen policy's action (robot units)
    expert: torch.Tensor     # (T, A) expert action (robot units)
    writes: torch.Tensor | None = None   # (T,) forced writes (an arm with a fixed schedule)


def collect_features(backbone, seeds, variants=TRAIN_VARIANTS, noise=0.3, memory=None,
                     beta=0.0, progress=True, desc='features', horizon=1, task=None,
                     strides=(1,), engine='planar'):
    """Episodes of features / base actions / expert labels. ``memory`` + ``beta``: with
    probability 1 - beta per episode the arm follows the memory policy (DAgger), else the noisy
    expert. ``horizon`` > 1: data for a chunk memory, every step a fresh chunk whose first
    ``horizon`` actions (flattened) are the base and the expert's plan over them the label.

    ``task`` (a ``RealtimeTask``): the task timed in seconds at its frame rate (what the
    real-time benchmark and a real-time sim run), else ``ArmTaskConfig``'s frame counts.
    ``strides``: the memory takes one step every ``s`` camera frames, ``s`` drawn per episode
    from ``strides`` (with a random phase); the arm still moves every frame. Asynchronous
    execution steps the memory once per processed frame, i.e. at the inference rate: strides
    (1, 3, 6, 12) cover 30, 10, 5 and 2.5 Hz at 30 fps (latencies up to ~400 ms)."""
    strides = tuple(strides)
    if not strides or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in strides):
        raise ValueError(f'strides must be whole numbers >= 1, got {strides}')
    if not 1 <= horizon <= backbone.config.chunk_size:
        raise ValueError(f'horizon must be in [1, chunk_size={backbone.config.chunk_size}] '
                         f'of the backbone, got {horizon}')
    if memory is not None and strides != (1,):
        raise ValueError('DAgger rollouts (memory=...) run one memory step per frame: '
                         'strides must be (1,)')
    if task is None:
        envs = {v: make_env(engine, ArmTaskConfig(variant=v)) for v in variants}
    else:
        envs = {v: make_env(engine, replace(task, variant=v).arm_config(
                    backbone.config.image_size))
                for v in variants}
    runner = PolicyRunner(backbone, memory, sim_limits(env=next(iter(envs.values()))))
    if memory is not None and runner.memory_horizon != horizon:
        raise ValueError(f'the memory corrects {runner.memory_horizon} actions per step, the '
                         f'data asked for {horizon}')
    runner.memory_horizon = horizon    # > 1: a fresh chunk every step, as a chunk memory reads
    episodes = []
    for i, seed in enumerate(tqdm(list(seeds), desc=desc, disable=not progress, leave=False)):
        env = envs[variants[i % len(variants)]]
        rng = np.random.default_rng([seed, 7])
        follow_policy = memory is not None and rng.random() >= beta
        pick = np.random.default_rng([seed, 11])       # apart: the noise draws stay as they were
        stride = strides[pick.integers(len(strides))]
        phase = int(pick.integers(stride))
        frame, done = env.reset(seed), False
        runner.reset(episode_seed=seed)
        feats, bases, experts = [], [], []
        while not done:
            expert = env.expert_action()
            if (env.t - phase) % stride == 0:       # a frame the memory processes
                if stride > 1:      # as asynchronous inference: a fresh chunk per observation
                    runner.forget_commands()
                step = runner.step(frame, env.q)
                feats.append(step.features)
                bases.append(step.base_action if horizon == 1 else step.memory_base)
                experts.append(expert if horizon == 1
                               else env.expert_plan(horizon).reshape(-1))
            if follow_policy:
                command = step.command
            else:
                noisy = expert + noise * env.config.max_joint_speed * rng.standard_normal(
                    env.n_joints)
                command = env.q + noisy
            frame, done = env.step(command)
        episodes.append(FeatureEpisode(torch.stack(feats).float(),
                                       torch.tensor(np.stack(bases), dtype=torch.float32),
                                       torch.tensor(np.stack(experts), dtype=torch.float32)))
    return episodes


def padded(episodes):
    """Stack variable-length episodes: (N, T, .) tensors and the (N, T) mask of real steps."""
    T = max(len(e.features) for e in episodes)
    N, F, A = len(episodes), episodes[0].features.shape[1], episodes[0].base.shape[1]
    feats, base, expert = torch.zeros(N, T, F), torch.zeros(N, T, A), torch.zeros(N, T, A)
    mask = torch.zeros(N, T, dtype=torch.bool)
    for i, e in enumerate(episodes):
        n = len(e.features)
        feats[i, :n], base[i, :n], expert[i, :n], mask[i, :n] = e.features, e.base, e.expert, 1
    return feats, base, expert, mask


def fit_memory(kind, episodes, action_std, steps=1500, batch=64, seed=0, write_rate=0.1,
               head_hidden=256, progress=True, feature_noise=FEATURE_NOISE, **config):
    """Train one memory arm (residual mode) on collected episodes. The write objective looks
    at every later action (ib_horizon 0): on the arm a cue's action comes after a delay.
    ``feature_noise``: TrainSchedule.feature_noise (FEATURE_NOISE: a finite set of noisy
    demonstrations)."""
    feats, base, expert, mask = padded(episodes)
    writes = forced_writes(episodes, feats.shape[1])
    if writes is not None and kind != 'always_write':
        raise ValueError(f'forced writes train an always_write memory on a fixed schedule, '
                         f'not {kind!r}')
    torch.manual_seed(seed)
    memory = build_memory(AuraConfig(feature_dim=feats.shape[-1], action_dim=base.shape[-1],
                                     kind=kind, action_mode='residual',
                                     write_rate=min(max(write_rate, 1e-3), 1.0),
                                     ib_horizon=0, head_hidden=head_hidden,
                                     **{'write_cost': WRITE_COST, **config}))
    memory.set_feature_stats(feats[mask])
    scale = torch.as_tensor(action_std, dtype=torch.float32)
    memory.action_scale.copy_(scale.repeat(base.shape[-1] // len(scale)))   # chunk: per action
    gen = torch.Generator().manual_seed(seed)

    def sample(step):
        idx = torch.randint(len(feats), (batch,), generator=gen)
        return Batch(features=feats[idx], targets=expert[idx], base_actions=base[idx],
                     mask=mask[idx], writes=None if writes is None else writes[idx])

    schedule = TrainSchedule(steps=steps, lr=3e-3, feature_noise=feature_noise,
                             warmup_gate=WARMUP_GATE)
    train_memory(memory, sample, 'mse', schedule, seed=seed, desc=f'memory {kind}',
                 progress=progress)
    return memory.eval()


def forced_writes(episodes, T):
    """(N, T) the episodes' forced writes (0 past an episode's end), or None if none has any;
    all or none of them must."""
    given = [e.writes is not None for e in episodes]
    if not any(given):
        return None
    if not all(given):
        raise ValueError('forced writes: every episode needs its schedule, or none')
    out = torch.zeros(len(episodes), T)
    for i, e in enumerate(episodes):
        if len(e.writes) != len(e.features):
            raise ValueError(f'episode {i}: {len(e.writes)} forced writes for '
                             f'{len(e.features)} steps')
        out[i, :len(e.writes)] = e.writes.float()
    return out


def write_rate_on(memory, episodes):
    """Writes per real step of a trained memory on episodes (hard gate, as at inference)."""
    feats, base, _, mask = padded(episodes)
    with torch.no_grad():
        out = memory.forward_sequence(feats, base, gate_mode='hard')
    return float(out.writes[mask].mean())
