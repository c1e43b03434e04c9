"""Demonstrations on the simulated arm: the scripted expert, with injected action noise (DART:
the executed action is noisy, the label is the clean expert action), so the data also covers
states off the expert's path."""
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from aura_ros.sim.arm import ArmTaskConfig
from aura_ros.sim.engines import make_env


@dataclass
class Demo:
    seed: int
    images: np.ndarray    # (T, H, W, 3) uint8, the frame seen before each action
    states: np.ndarray    # (T, J) joint positions
    actions: np.ndarray   # (T, J) clean expert actions (joint deltas)
    success: bool


def collect_demos(variant, seeds, noise=0.3, image_size=64, progress=True, policy=None,
                  engine='planar'):
    """One demo per seed on the ``engine``'s arm. ``noise``: std of the executed-action noise,
    as a fraction of the max joint speed. ``policy(env, image) -> action`` drives the arm
    instead of the noisy expert (DAgger-style rollouts, still labelled by the expert)."""
    env = make_env(engine, ArmTaskConfig(variant=variant, image_size=image_size))
    demos = []
    for seed in tqdm(list(seeds), desc=f'demos ({variant})', disable=not progress, leave=False):
        rng = np.random.default_rng([seed, 99])
        frame = env.reset(seed)
        images, states, actions = [], [], []
        done = False
        while not done:
            expert = env.expert_action()
            images.append(frame)
            states.append(env.q.copy())
            actions.append(expert)
            if policy is not None:
                executed = policy(env, frame)
            else:
                executed = expert + noise * env.config.max_joint_speed * rng.standard_normal(
                    env.n_joints)
            frame, done = env.step(env.q + executed)
        demos.append(Demo(seed, np.stack(images), np.stack(states), np.stack(actions),
                          bool(env.success)))
    return demos


def action_chunks(actions, chunk_size):
    """(T, A) -> (T, chunk, A): the next ``chunk_size`` expert actions from each step, padded
    with zeros (hold) past the end of the episode."""
    T, A = actions.shape
    padded = np.concatenate([actions, np.zeros((chunk_size, A))], axis=0)
    return np.stack([padded[t:t + chunk_size] for t in range(T)])
