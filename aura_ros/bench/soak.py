"""Soak: one endless episode of the policy loop (default backbone + memory), never reset.

The simulated arm supplies frames (its episodes cycle, the memory is never reset, as on a robot
that runs for days); every step is a full PolicyRunner step. Process RSS (psutil) and the
memory's live state bytes are sampled every ``sample_every`` steps. RSS growth is measured
from the end of the warm-up (first 5% of the steps) to the end.
"""
import gc

import numpy as np
import psutil
import torch
from tqdm.auto import tqdm

from aura_ros.paths import package_share
from aura_ros.policy import PolicyRunner
from aura_ros.sim.arm import ArmEnv, ArmTaskConfig
from aura_ros.sim.rollout import sim_limits


def run(steps=100_000, params=None, sample_every=1000, warmup_frac=0.05, progress=True):
    from aura_ros.core import load_memory
    from aura_ros.params import read_params_file
    from aura_ros.paths import resolve_path
    from aura_ros.train.__main__ import load_backbone
    torch.set_num_threads(1)
    params = params or f"{package_share('aura_ros')}/config/default.yaml"
    backbone = load_backbone(params)
    values, base_dir = read_params_file(params, 'policy_node')
    memory = load_memory(resolve_path(values['memory.checkpoint'], base_dir))
    runner = PolicyRunner(backbone, memory, sim_limits())
    env = ArmEnv(ArmTaskConfig(variant='memory'))
    process = psutil.Process()
    frame, episode = env.reset(0), 0
    out = {'steps': [], 'rss_bytes': [], 'state_bytes': [], 'writes': []}
    invalid = 0
    for t in tqdm(range(1, steps + 1), desc='soak', disable=not progress, mininterval=5.0):
        step = runner.step(frame, env.q)
        invalid += step.command is None
        frame, done = env.step(step.command)
        if done:   # next scene; the memory keeps running (no reset)
            episode += 1
            frame = env.reset(episode)
        if t % sample_every == 0 or t == 1:
            gc.collect()
            out['steps'].append(t)
            out['rss_bytes'].append(process.memory_info().rss)
            out['state_bytes'].append(memory.state_bytes())
            out['writes'].append(memory.total_writes)
    rss = np.array(out['rss_bytes'])
    warm = int(np.searchsorted(out['steps'], warmup_frac * steps))
    out['summary'] = dict(
        steps=steps, episodes_cycled=episode, writes=memory.total_writes,
        state_bytes_unique=sorted(set(out['state_bytes'])),
        rss_after_warmup=int(rss[warm]), rss_final=int(rss[-1]),
        rss_growth_after_warmup_bytes=int(rss[-1] - rss[warm]),
        rss_max_minus_warmup_bytes=int(rss[warm:].max() - rss[warm]),
        withheld_commands=int(invalid))
    return out


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(result['steps'], np.array(result['rss_bytes']) / 2**20, color='tab:blue',
            label='process RSS (MiB)')
    ax.set_xlabel('policy steps (one episode, never reset)')
    ax.set_ylabel('RSS (MiB)')
    ax2 = ax.twinx()
    ax2.plot(result['steps'], result['state_bytes'], color='tab:red', label='state bytes')
    ax2.set_ylabel('memory state (bytes)')
    s = result['summary']
    ax.set_title(f"Soak: RSS growth after warm-up {s['rss_growth_after_warmup_bytes'] / 2**20:.2f}"
                 f" MiB; state {s['state_bytes_unique']} B")
    fig.legend(loc='center right', bbox_to_anchor=(0.88, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
