"""Closed-loop evaluation on the simulated arm: every arm drives the arm through the same
control step as the policy node (PolicyRunner), in-process, on the same episode seeds.

Arms: ``base`` (the frozen VLA alone, trained on the visible variant), ``base_memory_variant``
(a memoryless VLA behaviour-cloned on the memory variant itself), ``no_memory`` (the residual
head without memory, trained on the same data as the memories: separates the memory's share
from residual fine-tuning), ``aura`` (shipped memory.safetensors), its gate ablations
``aura_surprise_only`` and ``feature_gate``, and the baselines shipped next to it
(memory_<kind>.safetensors: always_write, kv_cache, and the random/periodic schedules
budget-matched to AURA's write rate). Every episode is seeded: the sim, the backbone's chunk
noise (per episode and step, so one seed gives the same base actions in every arm) and the
write schedules (a fresh schedule per episode, derived from its seed). Per arm: success with a
Wilson 95% interval, writes per episode, largest live state seen, write probability per phase
(cue, delay, distractor, go) and per cue frame (frames 2-3 repeat frame 1).
"""

import numpy as np
import torch
from tqdm.auto import tqdm

from aura_ros.bench.stats import wilson
from aura_ros.paths import resolve_path
from aura_ros.policy import PolicyRunner
from aura_ros.sim.arm import ArmTaskConfig
from aura_ros.sim.engines import make_env
from aura_ros.sim.rollout import run_episode, sim_limits

ARMS = ('base', 'base_memory_variant', 'no_memory', 'aura', 'aura_surprise_only',
        'feature_gate', 'always_write', 'kv_cache', 'random_budget', 'periodic_budget')
MEMORYLESS = ('base', 'base_memory_variant', 'no_memory')
EVAL_SEED = 500_000
MEMORY_VARIANT_BASE = 'package://aura_ros/models/pi0_sim_memory'
CUE_FRAMES = 3


def default_memory_dir(params=None):
    """The folder of the checkpoint the parameter file loads (and its baselines)."""
    from aura_ros.params import read_params_file
    from aura_ros.paths import package_share
    params = params or str(package_share('aura_ros') + '/config/default.yaml')
    values, base_dir = read_params_file(params, 'policy_node')
    return resolve_path(values['memory.checkpoint'], base_dir).parent


def load_arm(arm, memory_dir):
    from aura_ros.core import load_memory
    if arm in ('base', 'base_memory_variant'):
        return None
    name = 'memory.safetensors' if arm == 'aura' else f'memory_{arm}.safetensors'
    return load_memory(memory_dir / name)


def load_memory_variant_base(params, path=MEMORY_VARIANT_BASE):
    """The default backbone block with the memory-variant model and its own statistics."""
    from aura_ros.backbones import build_backbone
    from aura_ros.params import backbone_block, read_params_file
    from aura_ros.paths import read_json
    values, base_dir = read_params_file(params, 'policy_node')
    block = dict(backbone_block(values), model_path=path)
    folder = resolve_path(path, base_dir)
    stats = read_json(folder / 'training.json')
    block.update({k: stats[k] for k in ('action_mean', 'action_std', 'state_mean',
                                        'state_std')})
    return build_backbone(block, base_dir=base_dir)


def _probability(wrote):
    """{p, writes, steps, ci95} of a list of write flags (None when empty)."""
    n, w = len(wrote), int(np.sum(wrote))
    return dict(p=(w / n) if n else None, writes=w, steps=n, ci95=wilson(w, n))


def evaluate_arm(backbone, memory, variant, episodes, progress=True, desc='', engine='planar'):
    env = make_env(engine, ArmTaskConfig(variant=variant))
    runner = PolicyRunner(backbone, memory, sim_limits(env=env))
    logs = [run_episode(env, runner, EVAL_SEED + i)
            for i in tqdm(range(episodes), desc=desc, disable=not progress, leave=False)]
    successes = sum(log.success for log in logs)
    phases = {}
    for name in ('cue', 'delay', 'distractor', 'go'):
        wrote = [w for log in logs for w, ph in zip(log.wrote, log.phase) if ph == name]
        phases[name] = float(np.mean(wrote)) if wrote else None
    cue_frames = [_probability([log.wrote[i] for log in logs if len(log.wrote) > i])
                  for i in range(CUE_FRAMES)]
    return dict(success=successes / episodes, success_ci95=wilson(successes, episodes),
                write_probability_by_cue_frame=cue_frames,
                successes=successes, writes_per_episode=float(np.mean([l.writes for l in logs])),
                steps_per_episode=float(np.mean([l.steps for l in logs])),
                state_bytes_max=int(max(l.state_bytes_max for l in logs)),
                write_probability_by_phase=phases,
                memory_ms_median=float(np.median([m for l in logs for m in l.memory_ms])),
                backbone_ms_median=float(np.median([m for l in logs for m in l.backbone_ms])))


def run(arms, episodes, params=None, memory_dir=None, variants=('memory', 'memory_hard'),
        progress=True, through_ros=0, engine='planar'):
    from aura_ros.paths import package_share
    from aura_ros.train.__main__ import load_backbone
    torch.set_num_threads(1)
    params = params or str(package_share('aura_ros') + '/config/default.yaml')
    backbone = load_backbone(params)
    if memory_dir is None:
        memory_dir = default_memory_dir(params)
    result = {'episodes': episodes, 'params': str(params), 'engine': engine, 'variants': {}}
    variant_base = (load_memory_variant_base(params) if 'base_memory_variant' in arms
                    else None)
    for variant in variants:
        block = {}
        for arm in arms:
            policy = variant_base if arm == 'base_memory_variant' else backbone
            block[arm] = evaluate_arm(policy, load_arm(arm, memory_dir), variant, episodes,
                                      progress, desc=f'{variant} {arm}', engine=engine)
        always = block.get('always_write', {}).get('writes_per_episode')
        for stats in block.values():
            w = stats['writes_per_episode']
            stats['write_reduction'] = (always / w) if always and w else None
        result['variants'][variant] = block
        if 'aura' in block:   # separated intervals: AURA's lower bound above their upper
            lo = block['aura']['success_ci95'][0]
            result.setdefault('aura_above', {})[variant] = {
                arm: bool(lo > block[arm]['success_ci95'][1])
                for arm in block if arm not in ('aura',)}
    result['arms'] = result['variants'][variants[0]]   # the headline variant
    result['headline_variant'] = variants[0]
    if through_ros:
        result['through_ros'] = ros_check(result, through_ros, params, variants[0])
    return result


def ros_check(result, episodes, params, variant):
    """The first ``episodes`` seeds again, through the real nodes (separate processes, DDS,
    lockstep sim): AURA's success there must lie within the in-process Wilson interval."""
    import tempfile

    from aura_ros.tools.demo import run_through_nodes
    with tempfile.TemporaryDirectory() as out:
        ok, results, _ = run_through_nodes(episodes, variant, EVAL_SEED, params, out,
                                           verbose=False)
    successes = sum(r.success for r, _, _ in results)
    in_process = result['variants'][variant]['aura']
    ros = dict(episodes=len(results), success=successes / max(len(results), 1),
               success_ci95=wilson(successes, len(results)), processes_ok=ok,
               writes_per_episode=float(np.mean([w for _, _, w in results])) if results else 0)
    ros['agrees_with_in_process'] = bool(
        in_process['success_ci95'][0] <= ros['success'] <= in_process['success_ci95'][1]
        or ros['success_ci95'][0] <= in_process['success'] <= ros['success_ci95'][1])
    return ros


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    variants = list(result['variants'])
    fig, axes = plt.subplots(len(variants), 2, figsize=(12, 4 * len(variants)), squeeze=False)
    for row, variant in enumerate(variants):
        block = result['variants'][variant]
        arms = list(block)
        s = [block[a]['success'] for a in arms]
        err = [[v - block[a]['success_ci95'][0] for v, a in zip(s, arms)],
               [block[a]['success_ci95'][1] - v for v, a in zip(s, arms)]]
        colors = ['tab:red' if a == 'aura' else 'tab:orange' if a.startswith('aura_')
                  or a == 'feature_gate' else 'tab:gray' if a in MEMORYLESS else 'tab:blue'
                  for a in arms]
        ax = axes[row, 0]
        ax.bar(arms, s, yerr=err, color=colors, capsize=3)
        ax.axhline(0.25, ls=':', c='k', label='chance (1 of 4 pads)')
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{variant}: success ({result['episodes']} episodes, Wilson 95% CI)")
        ax.tick_params(axis='x', rotation=30)
        ax.legend(fontsize=8)
        ax = axes[row, 1]
        ax.bar(arms, [max(block[a]['writes_per_episode'], 1e-2) for a in arms], color=colors)
        ax.set_yscale('log')
        ax.set_ylabel('writes per episode (log)')
        red = block.get('aura', {}).get('write_reduction')
        ax.set_title(f'{variant}: writes' + (f' (AURA {red:.1f}x fewer than always-write)'
                                             if red else ''))
        ax.tick_params(axis='x', rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
