"""Synthetic benchmark: every memory arm on the 8-way task (core/synthetic.py), several seeds.

Per seed: train AURA, measure its write rate on the evaluation episodes, then train the
budget-matched controls (random, periodic, Skip-RNN) at that rate, and the fixed arms
(always-write, dense GRU, KV-cache, no memory). Every arm gets the same training steps, batch
and learning rate, and is scored on the same evaluation episodes (a seed of their own, never
seen in training). Confidence intervals are over seeds (Student t), since seed-to-seed
variance dominates; the pooled per-episode counts are in the JSON too.
"""
import hashlib
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from aura_ros.core import AuraConfig, build_memory
from aura_ros.core.synthetic import (
    BACKGROUND,
    CONFIGS,
    DISTRACTOR,
    EVENT,
    N_CLASSES,
    OBS_DIM,
    REPEAT,
    oracle_reader_accuracy,
    sample_episodes,
)
from aura_ros.core.training import Batch, TrainSchedule, train_memory

ARMS = ('aura', 'always_write', 'gru_dense', 'random_budget', 'periodic_budget', 'skip_budget',
        'kv_cache', 'no_memory')
O1_BASELINES = ('always_write', 'gru_dense', 'random_budget', 'periodic_budget', 'skip_budget',
                'no_memory')
BUDGET_ARMS = ('random_budget', 'periodic_budget', 'skip_budget')
EVAL_SEED = 777_000


@dataclass
class BenchSettings:
    train_steps: dict = None          # per config; easy saturates early
    batch: int = 128
    eval_episodes: int = 2000
    lr: float = 3e-3
    target_write_rate: float = 0.05

    def __post_init__(self):
        if self.train_steps is None:
            self.train_steps = {'easy': 1000, 'hard': 2000}

    @classmethod
    def quick(cls):
        return cls(train_steps={'easy': 30, 'hard': 30}, batch=16, eval_episodes=200)


# Two-sided 95% Student t quantiles for 1..30 degrees of freedom (no scipy dependency).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_interval(values, bounds=(0.0, 1.0)):
    """Mean and 95% Student-t interval over seeds (the point itself for one seed), clipped to
    ``bounds`` (an accuracy interval never leaves [0, 1])."""
    values = np.asarray(values, float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, [mean, mean]
    t = T975[min(len(values) - 1, len(T975)) - 1] if len(values) <= 31 else 1.96
    half = t * values.std(ddof=1) / math.sqrt(len(values))
    return mean, [float(max(bounds[0], mean - half)), float(min(bounds[1], mean + half))]


def evaluate(model, episodes, generator_seed=0):
    """Accuracy at the query step, writes per episode, write probability per item kind."""
    with torch.no_grad():
        out = model.forward_sequence(episodes.obs, gate_mode='hard',
                                     generator=torch.Generator().manual_seed(generator_seed))
    correct = (out.actions[:, -1].argmax(-1) == episodes.answer)
    writes = out.writes
    by_kind = {name: (float(writes[episodes.kinds == kind].sum()),
                      int((episodes.kinds == kind).sum()))
               for name, kind in (('event', EVENT), ('repeat', REPEAT),
                                  ('distractor', DISTRACTOR), ('background', BACKGROUND))}
    # Live state size after streaming one episode through the inference path.
    model.reset()
    for x in episodes.obs[0]:
        model.step(x)
    return dict(correct=int(correct.sum()), episodes=len(correct),
                accuracy=float(correct.float().mean()),
                writes_per_episode=float(writes.sum(1).mean()),
                write_counts=by_kind, state_bytes=model.state_bytes())


def run_seed(config_name, seed, settings: BenchSettings, progress=False):
    """Train and evaluate every arm for one seed; returns {arm: evaluation}."""
    torch.set_num_threads(1)
    task = CONFIGS[config_name]
    eval_eps = sample_episodes(task, settings.eval_episodes, np.random.default_rng(EVAL_SEED))
    schedule = TrainSchedule(steps=settings.train_steps[config_name], lr=settings.lr)
    results, budget = {}, None
    for arm in ARMS:  # aura first: the budget arms need its write rate
        data_rng = np.random.default_rng([seed, 1])  # same training episodes for every arm

        def sample(step, data_rng=data_rng):
            episodes = sample_episodes(task, settings.batch, data_rng)
            return Batch(features=episodes.obs, targets=episodes.labels)

        rate = budget if arm in BUDGET_ARMS else settings.target_write_rate
        torch.manual_seed(seed)
        model = build_memory(AuraConfig(
            feature_dim=OBS_DIM, action_dim=N_CLASSES, kind=arm, action_mode='full',
            write_rate=min(max(rate, 1e-3), 0.999), target_write_rate=settings.target_write_rate))
        train_memory(model, sample, 'ce', schedule, seed=seed, progress=progress,
                     desc=f'{config_name} s{seed} {arm}')
        results[arm] = evaluate(model, eval_eps, generator_seed=seed)
        results[arm]['write_rate_trained'] = rate
        if arm == 'aura':
            budget = results['aura']['writes_per_episode'] / task.horizon
    return results


def summarise(config_name, per_seed, settings: BenchSettings):
    """Aggregate per-seed results into the benchmark's JSON block for one config."""
    task = CONFIGS[config_name]
    arms = {}
    always = np.mean([r['always_write']['writes_per_episode'] for r in per_seed])
    for arm in ARMS:
        runs = [r[arm] for r in per_seed]
        acc, ci = t_interval([r['accuracy'] for r in runs])
        writes = float(np.mean([r['writes_per_episode'] for r in runs]))
        correct, total = sum(r['correct'] for r in runs), sum(r['episodes'] for r in runs)
        arms[arm] = dict(
            accuracy=acc, accuracy_ci95=ci, accuracy_per_seed=[r['accuracy'] for r in runs],
            pooled_correct=correct, pooled_episodes=total,
            writes_per_episode=writes,
            write_reduction=(always / writes) if writes > 0 else None,
            state_bytes=max(r['state_bytes'] for r in runs))
    best = max(O1_BASELINES, key=lambda a: arms[a]['accuracy'])
    # Gate selectivity: write probability on novel events / on distractors, per seed.
    def prob(r, kind):
        writes, count = r['aura']['write_counts'][kind]
        return writes / max(count, 1)
    per_seed_sel = []
    for r in per_seed:
        p_event, p_dist = prob(r, 'event'), prob(r, 'distractor')
        per_seed_sel.append(p_event / p_dist if p_dist > 0 else None)
    pooled = {kind: [sum(r['aura']['write_counts'][kind][i] for r in per_seed) for i in (0, 1)]
              for kind in ('event', 'repeat', 'distractor', 'background')}
    p = {kind: w / max(n, 1) for kind, (w, n) in pooled.items()}
    # With no distractor write at all the ratio is unbounded: report it against half a write
    # (a conservative floor) and say so.
    floor = 0.5 / max(pooled['distractor'][1], 1)
    selectivity = p['event'] / max(p['distractor'], floor)
    aura, best_arm = arms['aura'], arms[best]
    eval_eps = sample_episodes(task, settings.eval_episodes, np.random.default_rng(EVAL_SEED))
    calib = sample_episodes(task, settings.eval_episodes, np.random.default_rng(EVAL_SEED + 1))
    return dict(
        seeds=len(per_seed), task=task.to_dict(), chance=1 / N_CLASSES,
        task_ceiling_reader=oracle_reader_accuracy(eval_eps, calib),
        best_o1_arm=best, gate_selectivity=selectivity,
        gate_selectivity_note=('write prob on novel events / on distractors, pooled over seeds'
                               + ('; no distractor write observed: denominator floored at 0.5 '
                                  'writes, so this is a lower bound' if pooled['distractor'][0] == 0
                                  else '')),
        gate_selectivity_per_seed=per_seed_sel,
        gate_write_probability=p,
        parity=dict(aura_accuracy=aura['accuracy'], best_o1_ci95=best_arm['accuracy_ci95'],
                    aura_within_or_above_best_ci=aura['accuracy'] >= best_arm['accuracy_ci95'][0],
                    aura_write_reduction=aura['write_reduction']),
        budget_controls_below_aura={a: arms[a]['accuracy_ci95'][1] < aura['accuracy_ci95'][0]
                                    for a in ('random_budget', 'periodic_budget')},
        arms=arms)


def _cache_path(cache_dir, name, seed, settings):
    """Per-seed result file, keyed by everything that determines the result."""
    key = json.dumps([name, seed, settings.__dict__], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return os.path.join(cache_dir, f'{name}-s{seed}-{digest}.json')


def run(configs, seeds, settings: BenchSettings, jobs=None, progress=True, cache_dir=None):
    """{'configs': {name: summary}} for the given configs and seeds (processes in parallel).
    With ``cache_dir``, each finished (config, seed) is kept there and reused by a later run
    with the same settings, so an interrupted run resumes instead of starting over."""
    jobs = jobs or min(2, os.cpu_count() or 1)
    per = {name: [None] * seeds for name in configs}
    tasks = []
    for name in sorted(configs, key=lambda n: -settings.train_steps[n] * CONFIGS[n].horizon):
        for seed in range(seeds):  # longest first: keeps both workers busy to the end
            path = cache_dir and _cache_path(cache_dir, name, seed, settings)
            if path and os.path.exists(path):
                with open(path) as f:
                    per[name][seed] = json.load(f)
            else:
                tasks.append((name, seed))
    bar = tqdm(total=len(tasks), desc='synthetic (config x seed)', disable=not progress)

    def done(name, seed, result):
        per[name][seed] = result
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)
            with open(_cache_path(cache_dir, name, seed, settings), 'w') as f:
                json.dump(result, f)
        bar.update()

    if jobs == 1:
        for name, seed in tasks:
            done(name, seed, run_seed(name, seed, settings, progress=progress))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_seed, name, seed, settings): (name, seed)
                       for name, seed in tasks}
            for fut in as_completed(futures):
                done(*futures[fut], fut.result())
    bar.close()
    return {'benchmark': 'synthetic', 'settings': settings.__dict__,
            'configs': {name: summarise(name, per[name], settings) for name in configs}}


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(result['configs'])
    fig, axes = plt.subplots(2, len(names), figsize=(6 * len(names), 7), squeeze=False)
    for col, name in enumerate(names):
        block = result['configs'][name]
        arms = list(block['arms'])
        acc = [block['arms'][a]['accuracy'] for a in arms]
        lo = [a - block['arms'][n]['accuracy_ci95'][0] for a, n in zip(acc, arms)]
        hi = [block['arms'][n]['accuracy_ci95'][1] - a for a, n in zip(acc, arms)]
        colors = ['tab:red' if a == 'aura' else 'tab:gray' if a == 'kv_cache' else 'tab:blue'
                  for a in arms]
        ax = axes[0, col]
        ax.bar(arms, acc, yerr=[lo, hi], color=colors, capsize=3)
        ax.axhline(block['chance'], ls=':', c='k', label='chance')
        ax.axhline(block['task_ceiling_reader'], ls='--', c='g', label='hand-coded reader')
        ax.set_title(f"{name}: accuracy at the query ({block['seeds']} seeds, 95% CI)")
        ax.set_ylim(0, 1.05)
        ax.tick_params(axis='x', rotation=45)
        ax.legend(loc='lower left', fontsize=8)
        ax = axes[1, col]
        ax.bar(arms, [max(block['arms'][a]['writes_per_episode'], 1e-2) for a in arms],
               color=colors)
        ax.set_yscale('log')
        ax.set_ylabel('writes per episode (log)')
        ax.tick_params(axis='x', rotation=45)
        red = block['arms']['aura']['write_reduction']
        ax.set_title(f'writes: AURA {red:.1f}x fewer than always-write' if red else 'writes')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
