"""Closed-loop evaluation on a simulated arm, task v2 (sim/arm.py): every arm drives the arm
through the same control step as the policy node (PolicyRunner), in-process, on the same
episode seeds.

    python -m aura_ros.bench closed-loop --json bench/results/closed_loop.json \\
        --plot bench/results/closed_loop.png [--engine mujoco] [--episodes 200]

Variants: ``plain`` (task v2, ``memory``: one cue at a random onset) and ``switch``
(``memory_switch``: a second cue of another pad later, then that cue re-shown).

Arms (each loaded from the folder of the parameter file's memory checkpoint):
  ``base``               the frozen VLA alone (trained on the visible variant);
  ``no_memory``          the residual head without memory, trained on the memories' data;
  ``aura``               the shipped memory.safetensors; its gate ablations
  ``aura_surprise_only`` (the gate sees no features) and ``feature_gate`` (features only);
  ``always_write``, ``kv_cache``, ``random_budget``, ``periodic_budget`` (the schedules
                         budget-matched to AURA's write rate in training, fresh per episode);
  ``first_frame``, ``pixel_change``, ``cue_oracle``: AURA's trained memory and heads with
  their writes *forced*, so they differ from ``aura`` only in when they write:
      first_frame   frame 0 only (the cheapest schedule that solved the earlier task);
      pixel_change  a frame whose mean absolute pixel change from the previous frame exceeds
                    a threshold set on calibration episodes to AURA's writes per episode (a
                    non-learned surprise heuristic at AURA's budget);
      cue_oracle    exactly the cue onsets that carry news (``cue_onset``, ``switch_cue``),
                    read from the sim's ground truth;
      no_write      never: what AURA's memory and heads do from the empty state alone (its
                    prior); an episode it fails is one that needs a write.
Every episode is seeded (scene, chunk noise per episode and step, write schedules), so arms
differ only in their memory. Per arm: success with a Wilson 95% interval, writes per episode,
and the write probability per ground-truth frame kind (counts and Wilson intervals).

The gate-input ablation of ``aura`` (core/ablation.py), with calibration episodes on other
seeds: its surprise and action-change signals, or its feature input, replaced by their mean
(``*_at_mean``) or by the value another episode had at the same step (``*_shuffled``: the
input keeps its distribution, loses its link to what this episode's camera shows).
"""
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from aura_ros.bench.stats import wilson
from aura_ros.paths import resolve_path
from aura_ros.policy import PolicyRunner
from aura_ros.sim.arm import FRAME_KINDS, NEWS_KINDS, ArmEnv, ArmTaskConfig
from aura_ros.sim.engines import make_env
from aura_ros.sim.rollout import run_episode, sim_limits

VARIANTS = {'plain': 'memory', 'switch': 'memory_switch'}
ARMS = ('aura', 'aura_surprise_only', 'feature_gate', 'always_write', 'kv_cache',
        'random_budget', 'periodic_budget', 'first_frame', 'pixel_change', 'cue_oracle',
        'no_write', 'no_memory', 'base')
MEMORYLESS = ('base', 'base_memory_variant', 'no_memory')
FORCED = ('first_frame', 'pixel_change', 'cue_oracle', 'no_write')   # AURA's, writes forced
ABLATIONS = ('surprise_at_mean', 'features_at_mean', 'surprise_shuffled', 'features_shuffled')
NEWS = NEWS_KINDS                                           # the frames the oracle writes
EVAL_SEED = 500_000
CALIBRATION_SEED = 900_000
MEMORY_VARIANT_BASE = 'package://aura_ros/models/pi0_sim_memory'


def default_memory_dir(params=None):
    """The folder of the checkpoint the parameter file loads (and its baselines)."""
    from aura_ros.params import read_params_file
    from aura_ros.paths import package_share
    params = params or str(package_share('aura_ros') + '/config/default.yaml')
    values, base_dir = read_params_file(params, 'policy_node')
    return resolve_path(values['memory.checkpoint'], base_dir).parent


def load_arm(arm, memory_dir):
    """The memory an arm runs (None: the frozen backbone alone); forced arms load AURA's."""
    from aura_ros.core import load_memory
    if arm in ('base', 'base_memory_variant'):
        return None
    name = ('memory.safetensors' if arm == 'aura' or arm in FORCED
            else f'memory_{arm}.safetensors')
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


def pixel_change(frame, previous):
    """Mean absolute change of the pixels from the previous frame (0 for the first)."""
    if previous is None:
        return 0.0
    return float(np.abs(frame.astype(np.int16) - previous.astype(np.int16)).mean())


class ForcedWrites:
    """A forced write schedule on a memory (``force_writes``): ``before_step(env, frame)``
    decides the coming step's write from the frame or the sim's ground truth."""

    def __init__(self, arm, threshold=None):
        if arm not in FORCED:
            raise ValueError(f'no forced schedule {arm!r} (one of {FORCED})')
        if arm == 'pixel_change' and threshold is None:
            raise ValueError('pixel_change needs its calibrated threshold')
        self.arm, self.threshold = arm, threshold
        self.write, self.previous = False, None

    def attach(self, memory):
        memory.force_writes(lambda: self.write)
        return self

    def before_step(self, env, frame):
        if env.t == 0:
            self.previous = None
        if self.arm == 'first_frame':
            self.write = env.t == 0
        elif self.arm == 'no_write':
            self.write = False
        elif self.arm == 'cue_oracle':
            self.write = env.frame_kind in NEWS
        else:
            self.write = pixel_change(frame, self.previous) > self.threshold
        self.previous = frame


def write_probability(logs):
    """{kind: {p, ci95, writes, frames}} over every step of ``logs`` (p None: no frames)."""
    out = {}
    for kind in FRAME_KINDS:
        flags = [w for log in logs for w, k in zip(log.wrote, log.kinds) if k == kind]
        n, w = len(flags), int(np.sum(flags))
        out[kind] = dict(p=(w / n) if n else None, ci95=wilson(w, n), writes=w, frames=n)
    return out


def onset_skipped(logs):
    """The episodes whose first cue onset was not written, and how many of them succeeded
    anyway (a gate on action-relevant surprise skips a cue whose write would not change what
    the arm does)."""
    skipped = [log for log in logs if 'cue_onset' in log.kinds
               and not log.wrote[log.kinds.index('cue_onset')]]
    return dict(episodes=len(skipped), successes=sum(log.success for log in skipped))


def summarise(logs):
    """An arm's numbers over its episodes, and each episode's outcome and write steps
    (``per_episode``: [success 0/1, [steps that wrote]], in seed order): lockstep episodes
    are deterministic, so a test replays some with the shipped checkpoints."""
    successes = sum(log.success for log in logs)
    n = len(logs)
    return dict(success=successes / n, success_ci95=wilson(successes, n),
                per_episode=[[int(log.success), [t for t, w in enumerate(log.wrote) if w]]
                             for log in logs],
                successes=successes, episodes=n,
                writes_per_episode=float(np.mean([log.writes for log in logs])),
                cue_onset_skipped=onset_skipped(logs),
                steps_per_episode=float(np.mean([log.steps for log in logs])),
                state_bytes_max=int(max(log.state_bytes_max for log in logs)),
                write_probability=write_probability(logs),
                memory_ms_median=float(np.median([m for lg in logs for m in lg.memory_ms])),
                backbone_ms_median=float(np.median([m for lg in logs
                                                    for m in lg.backbone_ms])))


def rollouts(backbone, memory, variant, seeds, engine='planar', before_step=None,
             progress=True, desc=''):
    env = make_env(engine, ArmTaskConfig(variant=variant))
    runner = PolicyRunner(backbone, memory, sim_limits(env=env))
    try:
        return [run_episode(env, runner, seed, before_step=before_step)
                for seed in tqdm(list(seeds), desc=desc, disable=not progress, leave=False)]
    finally:
        if hasattr(env, 'close'):
            env.close()


def onsets_where_needed(block, variant, first_seed=EVAL_SEED):
    """AURA's writes on cue onsets, split by whether the episode needs a write: it does where
    ``no_write`` (AURA's own memory and heads, never writing: its prior from the empty state;
    same seed, scene and chunk noise) fails, not where that prior already reaches the cued
    pad. From the arms' per-episode outcomes and write steps and the task's onset frames
    (deterministic per seed); ``no_memory`` stands in when ``no_write`` was not run."""
    aura = block['arms'].get('aura')
    blind = block['arms'].get('no_write') or block['arms'].get('no_memory')
    if aura is None or blind is None:
        return None
    env = ArmEnv(ArmTaskConfig(variant=variant))  # the task's clock (the same on every arm)
    counts = {'needed': [0, 0], 'not_needed': [0, 0]}
    for i, ((_, writes), (blind_ok, _)) in enumerate(zip(aura['per_episode'],
                                                         blind['per_episode'])):
        env.reset(first_seed + i)
        onset = env.episode.cues[0][0]
        key = 'not_needed' if blind_ok else 'needed'
        counts[key][0] += int(onset in writes)
        counts[key][1] += 1
    out = {k: dict(p=(w / n) if n else None, ci95=wilson(w, n), writes=w, frames=n)
           for k, (w, n) in counts.items()}
    out['reference'] = 'no_write' if 'no_write' in block['arms'] else 'no_memory'
    return out


def evaluate_arm(backbone, memory, variant, episodes, progress=True, desc='', engine='planar'):
    """One arm's numbers (``summarise``) on the evaluation seeds, in process."""
    seeds = range(EVAL_SEED, EVAL_SEED + episodes)
    return summarise(rollouts(backbone, memory, variant, seeds, engine, None, progress, desc))


def calibrate_pixel_change(logs_frames, writes_per_episode):
    """The threshold at which the pixel-change heuristic writes, on the calibration
    episodes' frames, as many frames per episode as AURA did there."""
    changes = np.concatenate([np.asarray(c) for c in logs_frames])
    total = writes_per_episode * len(logs_frames)
    if total <= 0:
        return float(changes.max()) + 1.0
    k = min(int(round(total)), len(changes))
    return float(np.sort(changes)[::-1][k - 1]) - 1e-9 if k > 0 else float(changes.max())


def evaluate_variant(backbone, memory_dir, variant, arms, episodes, calibration, engine,
                     progress=True, ablation=True, variant_base=None):
    """One variant: every arm on the evaluation seeds, then the ablation of ``aura``."""
    from aura_ros.core import ablation as gate_ablation
    seeds = range(EVAL_SEED, EVAL_SEED + episodes)
    calib_seeds = range(CALIBRATION_SEED, CALIBRATION_SEED + calibration)
    out = {'arms': {}}
    # calibration: AURA on other seeds (the pixel-change threshold; the gate's inputs)
    needs_calibration = 'pixel_change' in arms or ablation
    recorded, threshold = None, None
    if needs_calibration:
        aura = load_arm('aura', memory_dir)
        changes, previous = [], {}

        def watch(env, frame):
            if env.t == 0:
                changes.append([])
                previous['frame'] = None
            changes[-1].append(pixel_change(frame, previous['frame']))
            previous['frame'] = frame
        with gate_ablation.recording(aura) as recorded:
            logs = rollouts(backbone, aura, variant, calib_seeds, engine, watch, progress,
                            desc=f'{variant} calibration')
        threshold = calibrate_pixel_change(changes, np.mean([lg.writes for lg in logs]))
        out['calibration'] = dict(episodes=calibration, seeds=[calib_seeds[0],
                                                                calib_seeds[-1]],
                                  aura_writes_per_episode=float(np.mean([lg.writes
                                                                         for lg in logs])),
                                  pixel_change_threshold=threshold)
    for arm in arms:
        memory = load_arm(arm, memory_dir)
        before = None
        if arm in FORCED:
            before = ForcedWrites(arm, threshold).attach(memory).before_step
        policy = variant_base if arm == 'base_memory_variant' else backbone
        logs = rollouts(policy, memory, variant, seeds, engine, before, progress,
                        desc=f'{variant} {arm}')
        out['arms'][arm] = summarise(logs)
    out['cue_onset_writes_by_need'] = onsets_where_needed(out, variant)
    always = out['arms'].get('always_write', {}).get('writes_per_episode')
    for stats in out['arms'].values():
        w = stats['writes_per_episode']
        stats['write_reduction'] = (always / w) if always and w else None
    if ablation:
        out['ablation'] = {}
        for name in ABLATIONS:
            which = 'state' if name.startswith('surprise') else 'features'
            source = (gate_ablation.at_mean(recorded, which) if name.endswith('at_mean')
                      else gate_ablation.shuffled(recorded, which, seed=1))
            memory = load_arm('aura', memory_dir)
            with gate_ablation.replaced(memory, which, source):
                logs = rollouts(backbone, memory, variant, seeds, engine, None, progress,
                                desc=f'{variant} aura {name}')
            out['ablation'][name] = summarise(logs)
    return out


def run(arms=ARMS, episodes=200, params=None, memory_dir=None, variants=('plain', 'switch'),
        progress=True, through_ros=0, engine='planar', calibration=50, ablation=True,
        realtime=0):
    from aura_ros.paths import package_share
    from aura_ros.train.__main__ import load_backbone
    torch.set_num_threads(1)
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f'unknown variants {sorted(unknown)} (choose from {list(VARIANTS)})')
    params = params or str(package_share('aura_ros') + '/config/default.yaml')
    backbone = load_backbone(params)
    if memory_dir is None:
        memory_dir = default_memory_dir(params)
    variant_base = (load_memory_variant_base(params) if 'base_memory_variant' in arms
                    else None)
    from aura_ros.params import read_params_file
    shipped = read_params_file(params, 'policy_node')[0].get('memory.checkpoint', '')
    result = {'episodes': episodes, 'params': _shown(params), 'engine': engine,
              'checkpoint': shipped if memory_dir == default_memory_dir(params)
              else str(memory_dir), 'task': 'v2', 'first_seed': EVAL_SEED,
              'checkpoints': checkpoint_digests(memory_dir, arms), 'variants': {}}
    for key in variants:
        block = evaluate_variant(backbone, memory_dir, VARIANTS[key], arms, episodes,
                                 calibration, engine, progress, ablation and 'aura' in arms,
                                 variant_base)
        block['variant'] = VARIANTS[key]
        block['targets'] = targets(block)
        result['variants'][key] = block
    if through_ros:
        result['through_ros'] = ros_check(result, through_ros, params, variants[0])
    if realtime:
        result['realtime'] = {key: ros_check(result, realtime, params, key, lockstep=False)
                              for key in variants}
    return result


def _shown(path):
    """A path as the report shows it: relative to the package's share folder when inside."""
    from pathlib import Path

    from aura_ros.paths import package_share
    try:
        return str(Path(path).resolve().relative_to(Path(package_share('aura_ros'))))
    except ValueError:
        return str(path)


def checkpoint_digests(memory_dir, arms):
    """sha256 of each checkpoint file an arm loads (what the published numbers came from)."""
    import hashlib
    out = {}
    for arm in arms:
        if arm in ('base', 'base_memory_variant'):
            continue
        name = ('memory.safetensors' if arm == 'aura' or arm in FORCED
                else f'memory_{arm}.safetensors')
        out[name] = hashlib.sha256((memory_dir / name).read_bytes()).hexdigest()
    return out


def _above(block, arm, other):
    a, o = block['arms'].get(arm), block['arms'].get(other)
    return None if a is None or o is None else bool(a['success_ci95'][0] > o['success_ci95'][1])


def targets(block):
    """Issue 27's targets for one variant, from its numbers (None: an arm was not run)."""
    arms, out = block['arms'], {}
    if 'aura' not in arms:
        return out
    aura = arms['aura']
    out['aura_above'] = {other: _above(block, 'aura', other)
                         for other in ('first_frame', 'pixel_change', 'random_budget',
                                       'periodic_budget', 'no_memory', 'base')
                         if other in arms}
    oracle = arms.get('cue_oracle')
    if oracle is not None:
        out['aura_within_or_above_cue_oracle'] = bool(
            aura['success_ci95'][1] >= oracle['success_ci95'][0])
    wp = aura['write_probability']

    def p(kind):
        return wp[kind]['p']
    checks = {'cue_onset': ('>=', 0.9), 'switch_cue': ('>=', 0.8),
              'cue_continued': ('<=', 0.1), 'reshown_cue': ('<=', 0.1),
              'distractor': ('<=', 0.05), 'pre_cue': ('<=', 0.05), 'delay': ('<=', 0.05),
              'go': ('<=', 0.05)}
    out['write_probability'] = {
        kind: (None if p(kind) is None else bool(p(kind) >= bound if op == '>=' else
                                                 p(kind) <= bound))
        for kind, (op, bound) in checks.items()}
    need = block.get('cue_onset_writes_by_need')
    if need and need['needed']['p'] is not None:
        out['cue_onset_where_needed_at_least_0.9'] = bool(need['needed']['p'] >= 0.9)
    out['write_reduction_vs_always_write'] = aura.get('write_reduction')
    out['write_reduction_at_least_7x'] = (None if aura.get('write_reduction') is None
                                          else bool(aura['write_reduction'] >= 7.0))
    abl = block.get('ablation')
    if abl and 'no_memory' in arms:
        shuffled, no_memory = abl['surprise_shuffled'], arms['no_memory']
        swp = shuffled['write_probability']
        out['surprise_shuffled_loses_it'] = bool(
            shuffled['success_ci95'][0] <= no_memory['success_ci95'][1]
            or (swp['cue_onset']['p'] or 0) <= (swp['distractor']['p'] or 0))
        fwp = abl['features_shuffled']['write_probability']['cue_onset']['p']
        out['features_shuffled_keeps_cue_writes'] = None if fwp is None else bool(fwp >= 0.8)
    return out


def ros_check(result, episodes, params, variant_key, lockstep=True):
    """The first ``episodes`` seeds again, through the real nodes (separate processes, DDS;
    the sim in lockstep, or in real time): AURA's success there must lie within the
    in-process Wilson interval (lockstep), or be reported beside it (real time). In real time
    the policy runs as on a robot: the parameter file with ``execution: async`` (commands at
    100 Hz from time-stamped chunks, the README's robot setting) instead of lockstep's sync."""
    import tempfile

    from aura_ros.bench.param_files import ASYNC_EXECUTION, write_params_with
    from aura_ros.tools.demo import run_through_nodes
    with tempfile.TemporaryDirectory() as out:
        if not lockstep:
            params = write_params_with(params, Path(out) / 'realtime.yaml', [ASYNC_EXECUTION])
        ok, results, _ = run_through_nodes(episodes, VARIANTS[variant_key], EVAL_SEED,
                                           str(params), out, verbose=False, lockstep=lockstep,
                                           timeout=60.0 + 20.0 * episodes)
    successes = sum(r.success for r, _, _ in results)
    in_process = result['variants'][variant_key]['arms']['aura']
    ros = dict(episodes=len(results), success=successes / max(len(results), 1),
               success_ci95=wilson(successes, len(results)), processes_ok=ok,
               writes_per_episode=float(np.mean([w for _, _, w in results])) if results else 0,
               execution='sync' if lockstep else 'async')
    ros['agrees_with_in_process'] = bool(
        in_process['success_ci95'][0] <= ros['success'] <= in_process['success_ci95'][1]
        or ros['success_ci95'][0] <= in_process['success'] <= ros['success_ci95'][1])
    return ros


def _colour(arm):
    if arm == 'aura':
        return 'tab:red'
    if arm.startswith('aura_') or arm == 'feature_gate':
        return 'tab:orange'
    if arm in FORCED:
        return 'tab:purple'
    return 'tab:gray' if arm in MEMORYLESS else 'tab:blue'


def plot(result, path):
    """Per variant: success per arm (Wilson 95%), writes per episode, and the write
    probability per frame kind of the arms that choose when to write."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    keys = list(result['variants'])
    fig, axes = plt.subplots(len(keys), 3, figsize=(18, 4.6 * len(keys)), squeeze=False,
                             gridspec_kw={'width_ratios': [1.2, 1.0, 1.4]})
    for row, key in enumerate(keys):
        block = result['variants'][key]
        arms = list(block['arms']) + [f'aura/{a}' for a in block.get('ablation', {})]
        stats = [block['arms'][a] if a in block['arms']
                 else block['ablation'][a.split('/', 1)[1]] for a in arms]
        s = [st['success'] for st in stats]
        err = [[v - st['success_ci95'][0] for v, st in zip(s, stats)],
               [st['success_ci95'][1] - v for v, st in zip(s, stats)]]
        colours = [_colour(a) if '/' not in a else 'tab:pink' for a in arms]
        ax = axes[row, 0]
        ax.bar(arms, s, yerr=err, color=colours, capsize=3)
        ax.axhline(0.25, ls=':', c='k', label='chance (1 of 4 pads)')
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{key} ({block['variant']}): success, {result['episodes']} episodes, "
                     f"Wilson 95%")
        ax.tick_params(axis='x', rotation=60, labelsize=8)
        ax.legend(fontsize=8)
        ax = axes[row, 1]
        ax.bar(arms, [max(st['writes_per_episode'], 1e-2) for st in stats], color=colours)
        ax.set_yscale('log')
        ax.set_ylabel('writes per episode (log)')
        red = block['arms'].get('aura', {}).get('write_reduction')
        ax.set_title(f'{key}: writes' + (f' (AURA {red:.1f}x fewer than always-write)'
                                         if red else ''))
        ax.tick_params(axis='x', rotation=60, labelsize=8)
        ax = axes[row, 2]
        shown = [a for a in ('aura', 'aura_surprise_only', 'feature_gate', 'pixel_change',
                             'cue_oracle') if a in block['arms']]
        kinds = [k for k in FRAME_KINDS
                 if block['arms'][shown[0]]['write_probability'][k]['frames']] if shown else []
        width = 0.8 / max(len(shown), 1)
        for i, arm in enumerate(shown):
            wp = block['arms'][arm]['write_probability']
            ps = [wp[k]['p'] or 0.0 for k in kinds]
            lo = [p - wp[k]['ci95'][0] for p, k in zip(ps, kinds)]
            hi = [wp[k]['ci95'][1] - p for p, k in zip(ps, kinds)]
            ax.bar(np.arange(len(kinds)) + i * width, ps, width, yerr=[lo, hi],
                   color=_colour(arm) if arm != 'pixel_change' else 'tab:brown',
                   alpha=1.0 if arm == 'aura' else 0.75, capsize=2, label=arm)
        ax.set_xticks(np.arange(len(kinds)) + 0.4 - width / 2)
        ax.set_xticklabels(kinds, rotation=30, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel('p(write | frame kind)')
        ax.set_title(f'{key}: when each arm writes (Wilson 95%)')
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
