"""Synthetic benchmark: every memory arm on the 8-way tasks (sim/synthetic.py), several seeds.

Per seed: train AURA, measure its write rate on the evaluation episodes, then train the
budget-matched controls (random, periodic, Skip-RNN) at that rate, AURA's two gate ablations
(``aura_surprise_only``: the gate sees only state-dependent signals; ``feature_gate``: it sees
only the features) and the fixed arms (always-write, dense GRU, KV-cache, no memory). Every arm
gets the same training steps, batch, learning rate and training episodes, and is scored on the
same evaluation episodes (a seed of their own, never seen in training). Accuracy intervals are
over seeds (Student t), since seed-to-seed variance dominates; write probabilities per item
kind are pooled over seeds with their raw counts and Wilson intervals.

On the trained AURA gate the benchmark also runs the ablation that could falsify "it writes on
surprise": the evaluation again with the gate's state signals replaced by their mean (it can no
longer see surprise), and again with its features replaced by their mean.
"""
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from aura_ros.bench.code_key import code_digest
from aura_ros.bench.stats import t_interval, wilson
from aura_ros.core import AuraConfig, build_memory
from aura_ros.core.training import Batch, TrainSchedule, train_memory
from aura_ros.sim.synthetic import (
    CONFIGS,
    KIND_NAMES,
    N_CLASSES,
    QUERY_STEP,
    oracle_reader_accuracy,
    sample_episodes,
)

ARMS = ('aura', 'aura_surprise_only', 'feature_gate', 'always_write', 'gru_dense',
        'random_budget', 'periodic_budget', 'skip_budget', 'kv_cache', 'no_memory')
GATE_ARMS = ('aura', 'aura_surprise_only', 'feature_gate')
# Fixed-size baselines AURA is compared with (its own ablations are reported beside them).
O1_BASELINES = ('always_write', 'gru_dense', 'random_budget', 'periodic_budget', 'skip_budget',
                'no_memory')
BUDGET_ARMS = ('random_budget', 'periodic_budget', 'skip_budget')
ITEM_KINDS = ('event', 'repeat', 'distractor', 'context', 'background')
EVAL_SEED = 777_000


@dataclass
class BenchSettings:
    train_steps: dict = None          # per config
    batch: int = 64
    eval_episodes: int = 2000
    lr: float = 3e-3
    target_write_rate: float = 0.08   # the sparsity penalty acts above this write rate
    ib_horizon: int = 1               # the write objective judges a write on the next action
    # Curriculum, the same for every arm: the first fraction of a config's training steps
    # draws episodes from an easier config of the same task (same observations).
    curriculum: dict = None           # {config: [easier config, fraction]}
    warmup_frac: float = 0.3          # learned gates: steps writing every step, gate resting
    # AuraConfig fields of the learned-gate arms (aura and its two ablations alike): the action
    # is a class here, so the gate measures a write's effect on it as a change of the action
    # distribution; the price of a write (``write_cost``, in loss units) was chosen on hard
    # seed 0 among 0.5 (the AuraConfig default), 4, 6 and 16 (bench/notes.md: every result).
    gate: dict = None

    def gate_config(self, arm):
        return dict(self.gate) if arm in GATE_ARMS else {}

    def __post_init__(self):
        if self.train_steps is None:
            self.train_steps = {'easy': 1000, 'hard': 2000, 'legacy_easy': 1000,
                                'legacy_hard': 2000}
        if self.curriculum is None:
            self.curriculum = {'hard': ['easy', 0.4]}
        if self.gate is None:
            self.gate = {'write_cost': 4.0, 'action_change': 'distribution'}

    @classmethod
    def quick(cls):
        return cls(train_steps={name: 30 for name in CONFIGS}, batch=16, eval_episodes=200)


@contextmanager
def gate_input_at_mean(model, episodes, which):
    """Evaluate a trained learned gate with one of its inputs replaced by its mean over the
    evaluation steps: ``which`` = 'state' (surprise and action-change signals) or 'features'."""
    rule = model.rule
    seen = []
    if which == 'state':
        original = rule.signals

        def record(*args):
            out = original(*args)
            seen.append(out.detach().reshape(-1, out.shape[-1]))
            return out
        rule.signals = record
        with torch.no_grad():
            model.forward_sequence(episodes.obs, gate_mode='hard')
        mean = torch.cat(seen).mean(0)
        rule.signals = lambda memory, W, b, enc, cand: mean.expand(W.shape[0], -1)
        try:
            yield
        finally:
            del rule.signals
    else:
        original = model.encode

        def encode_at_mean(features):
            enc = original(features)
            flat = enc['gate_ctx'].reshape(-1, enc['gate_ctx'].shape[-1])
            enc['gate_ctx'] = flat.mean(0).expand_as(enc['gate_ctx'])
            return enc
        model.encode = encode_at_mean
        try:
            yield
        finally:
            del model.encode


def evaluate(model, episodes, generator_seed=0):
    """Accuracy at the query step, writes per episode, writes per item kind."""
    with torch.no_grad():
        out = model.forward_sequence(episodes.obs, gate_mode='hard',
                                     generator=torch.Generator().manual_seed(generator_seed))
    correct = (out.actions[:, -1].argmax(-1) == episodes.answer)
    writes = out.writes
    by_kind = {KIND_NAMES[k]: [int(writes[episodes.kinds == k].sum()),
                               int((episodes.kinds == k).sum())]
               for k in KIND_NAMES if k != QUERY_STEP}
    # Live state size after streaming one episode through the inference path.
    model.reset(seed=generator_seed)
    for x in episodes.obs[0]:
        model.step(x)
    return dict(correct=int(correct.sum()), episodes=len(correct),
                accuracy=float(correct.float().mean()),
                writes_per_episode=float(writes.sum(1).mean()),
                write_counts=by_kind, state_bytes=model.state_bytes())


def run_seed(config_name, seed, settings: BenchSettings, progress=False, cache_dir=None,
             arms=ARMS):
    """Train and evaluate every arm (of ``arms``: the budget arms need aura) for one seed;
    returns {arm: evaluation}. With
    ``cache_dir``, each finished arm is kept there and reused (an interrupted run loses at
    most the arm in training)."""
    torch.set_num_threads(1)
    task = CONFIGS[config_name]
    eval_eps = sample_episodes(task, settings.eval_episodes, np.random.default_rng(EVAL_SEED))
    results, budget = {}, None
    for arm in (a for a in ARMS if a in arms):  # aura first: the budget arms need its rate
        path = cache_dir and _cache_path(cache_dir, config_name, seed, arm, settings)
        if path and os.path.exists(path):
            with open(path) as f:
                results[arm] = json.load(f)
        else:
            results[arm] = _train_arm(arm, config_name, seed, settings, eval_eps, budget,
                                      progress)
            if path:
                os.makedirs(cache_dir, exist_ok=True)
                with open(path + '.tmp', 'w') as f:
                    json.dump(results[arm], f)
                os.replace(path + '.tmp', path)
        if arm == 'aura':
            budget = results['aura']['writes_per_episode'] / task.horizon
    return results


def _train_arm(arm, config_name, seed, settings, eval_eps, budget, progress):
    model, rate = _fit_arm(arm, config_name, seed, settings, budget, progress)
    result = evaluate(model, eval_eps, generator_seed=seed)
    result['write_rate_trained'] = rate
    if arm == 'aura':
        result['ablation'] = {}
        for which in ('state', 'features'):
            with gate_input_at_mean(model, eval_eps, which):
                result['ablation'][which] = evaluate(model, eval_eps, seed)
    return result


def _fit_arm(arm, config_name, seed, settings, budget, progress):
    """One arm trained as the benchmark trains it; returns (model, its training write rate)."""
    task = CONFIGS[config_name]
    schedule = TrainSchedule(steps=settings.train_steps[config_name], lr=settings.lr,
                             warmup_frac=settings.warmup_frac)
    easier, frac = settings.curriculum.get(config_name, [config_name, 0.0])
    data_rng = np.random.default_rng([seed, 1])  # same training episodes for every arm

    def sample(step):
        source = CONFIGS[easier] if step < frac * schedule.steps else task
        episodes = sample_episodes(source, settings.batch, data_rng)
        return Batch(features=episodes.obs, targets=episodes.labels)

    rate = budget if arm in BUDGET_ARMS else settings.target_write_rate
    torch.manual_seed(seed)
    model = build_memory(AuraConfig(
        feature_dim=task.obs_dim, action_dim=N_CLASSES, kind=arm, action_mode='full',
        write_rate=min(max(rate, 1e-3), 0.999), target_write_rate=settings.target_write_rate,
        ib_horizon=settings.ib_horizon, **settings.gate_config(arm)))
    train_memory(model, sample, 'ce', schedule, seed=seed, progress=progress,
                 desc=f'{config_name} s{seed} {arm}')
    return model, rate


def threshold_sweep(config_name, seed, settings: BenchSettings, thresholds, arm='aura',
                    progress=True):
    """Is the run-time gate threshold what holds a trained gate back? Trains ``arm`` exactly as
    ``run_seed`` does (same seed, data and recipe, so at the trained threshold 0.5 the
    evaluation equals the benchmark's), then evaluates it at each threshold on calibration
    episodes (never the evaluation set: a threshold is chosen there) and on the evaluation
    episodes. Returns {'thresholds': [{threshold, calibration, evaluation}, ...]}."""
    if arm not in GATE_ARMS:
        raise ValueError(f'{arm!r} has no learned gate to sweep (one of {GATE_ARMS})')
    torch.set_num_threads(1)
    task = CONFIGS[config_name]
    model, _ = _fit_arm(arm, config_name, seed, settings, None, progress)
    sets = {'calibration': sample_episodes(task, settings.eval_episodes,
                                           np.random.default_rng(EVAL_SEED + 7)),
            'evaluation': sample_episodes(task, settings.eval_episodes,
                                          np.random.default_rng(EVAL_SEED))}
    rows = []
    for threshold in tqdm(thresholds, desc='thresholds', disable=not progress):
        model.config.gate_threshold = float(threshold)
        row = {'threshold': float(threshold)}
        for name, episodes in sets.items():
            r = evaluate(model, episodes, generator_seed=seed)
            row[name] = dict(accuracy=r['accuracy'], writes_per_episode=r['writes_per_episode'],
                             write_probability=write_probabilities([{arm: r}], arm),
                             write_counts=r['write_counts'])
        rows.append(row)
    return {'benchmark': 'synthetic_threshold_sweep', 'config': config_name, 'seed': seed,
            'arm': arm, 'settings': settings.__dict__, 'thresholds': rows}


def write_probabilities(per_seed, arm, key=None):
    """Pooled write probability per item kind with counts and Wilson intervals."""
    counts = {}
    for r in per_seed:
        stats = r[arm] if key is None else r[arm]['ablation'][key]
        for kind, (w, n) in stats['write_counts'].items():
            c = counts.setdefault(kind, [0, 0])
            c[0] += w
            c[1] += n
    out = {kind: (w / n if n else None) for kind, (w, n) in counts.items()}
    out['counts'] = {kind: {'writes': w, 'steps': n} for kind, (w, n) in counts.items()}
    out['ci95'] = {kind: wilson(w, n) for kind, (w, n) in counts.items()}
    return out


def _arm_block(runs, always):
    acc, ci = t_interval([r['accuracy'] for r in runs])
    writes = float(np.mean([r['writes_per_episode'] for r in runs]))
    return dict(accuracy=acc, accuracy_ci95=ci, accuracy_per_seed=[r['accuracy'] for r in runs],
                pooled_correct=sum(r['correct'] for r in runs),
                pooled_episodes=sum(r['episodes'] for r in runs), writes_per_episode=writes,
                write_reduction=(always / writes) if writes > 0 else None,
                state_bytes=max(r['state_bytes'] for r in runs))


def summarise(config_name, per_seed, settings: BenchSettings):
    """Aggregate per-seed results into the benchmark's JSON block for one config."""
    task = CONFIGS[config_name]
    always = np.mean([r['always_write']['writes_per_episode'] for r in per_seed])
    arms = {arm: _arm_block([r[arm] for r in per_seed], always) for arm in ARMS}
    best = max(O1_BASELINES, key=lambda a: arms[a]['accuracy'])
    aura, best_arm = arms['aura'], arms[best]
    wp = {arm: write_probabilities(per_seed, arm) for arm in GATE_ARMS + BUDGET_ARMS}
    ablation = {}
    for key in ('state', 'features'):
        ablation[key] = dict(_arm_block([r['aura']['ablation'][key] for r in per_seed], always),
                             write_probability=write_probabilities(per_seed, 'aura', key))
    within = aura['accuracy'] >= best_arm['accuracy_ci95'][0]
    best_writes = best_arm['writes_per_episode']

    def selective(arm):
        p = wp[arm]
        return {kind: bool(p[kind] is not None and p['event'] and p[kind] <= 0.25 * p['event'])
                for kind in ('repeat', 'distractor')}

    so = arms['aura_surprise_only']
    eval_eps = sample_episodes(task, settings.eval_episodes, np.random.default_rng(EVAL_SEED))
    calib = sample_episodes(task, settings.eval_episodes, np.random.default_rng(EVAL_SEED + 1))
    return dict(
        seeds=len(per_seed), task=task.to_dict(), chance=1 / N_CLASSES,
        task_ceiling_reader=oracle_reader_accuracy(task, eval_eps, calib),
        best_o1_arm=best,
        parity=dict(
            aura_accuracy=aura['accuracy'], best_o1_arm=best,
            best_o1_ci95=best_arm['accuracy_ci95'], aura_within_or_above_best_ci=bool(within),
            # the paper's measure: fewer writes than the best O(1) baseline, at parity
            write_reduction_vs_best_o1=(best_writes / aura['writes_per_episode']
                                        if aura['writes_per_episode'] else None),
            write_reduction_at_parity=((best_writes / aura['writes_per_episode'])
                                       if within and aura['writes_per_episode'] else None),
            write_reduction_vs_always_write=aura['write_reduction']),
        surprise_path=dict(
            surprise_only_keeps_write_reduction=(so['write_reduction'] / aura['write_reduction']
                                                 if so['write_reduction'] and
                                                 aura['write_reduction'] else None),
            surprise_only_accuracy_within_aura_ci=bool(
                aura['accuracy_ci95'][0] <= so['accuracy'] <= aura['accuracy_ci95'][1]
                or so['accuracy'] >= aura['accuracy']),
            selective={arm: selective(arm) for arm in GATE_ARMS}),
        budget_controls_below_aura={a: arms[a]['accuracy_ci95'][1] < aura['accuracy_ci95'][0]
                                    for a in ('random_budget', 'periodic_budget')},
        write_probability=wp, gate_input_ablation=ablation, arms=arms)


# What computes one (config, seed, arm) result: its key names this code (bench/code_key.py), so
# a result from other code is recomputed, not reused.
COMPUTED_BY = ('core', 'sim/synthetic.py', 'bench/synthetic.py', 'bench/stats.py')


def _cache_path(cache_dir, name, seed, arm, settings, code=None):
    """Result file of one (config, seed, arm), keyed by everything that determines it: the
    settings (an arm trained on a budget depends on its seed's aura, which is keyed by the same
    settings) and the code that computed it (``code``: its digest, default the current
    ``COMPUTED_BY``'s)."""
    keyed = dict(settings.__dict__)
    if arm not in GATE_ARMS + BUDGET_ARMS:   # the gate recipe cannot change these arms
        keyed.pop('gate')
    code = code or code_digest(*COMPUTED_BY)
    key = json.dumps([name, seed, keyed, code], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return os.path.join(cache_dir, f'{name}-s{seed}-{arm}-{digest}.json')


def run(configs, seeds, settings: BenchSettings, jobs=None, progress=True, cache_dir=None):
    """{'configs': {name: summary}} for the given configs and seeds (processes in parallel).
    With ``cache_dir``, each finished (config, seed, arm) is kept there and reused by a later
    run with the same settings, so an interrupted run resumes instead of starting over."""
    jobs = jobs or min(2, os.cpu_count() or 1)
    per = {name: [None] * seeds for name in configs}
    tasks = [(name, seed) for name in sorted(
        configs, key=lambda n: -settings.train_steps[n] * CONFIGS[n].horizon)
        for seed in range(seeds)]  # longest first: keeps both workers busy to the end
    bar = tqdm(total=len(tasks), desc='synthetic (config x seed)', disable=not progress)
    if jobs == 1:
        for name, seed in tasks:
            per[name][seed] = run_seed(name, seed, settings, progress, cache_dir)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_seed, name, seed, settings, False, cache_dir):
                       (name, seed) for name, seed in tasks}
            for fut in as_completed(futures):
                name, seed = futures[fut]
                per[name][seed] = fut.result()
                bar.update()
    bar.close()
    return {'benchmark': 'synthetic', 'settings': settings.__dict__,
            'configs': {name: summarise(name, per[name], settings) for name in configs}}


def plot(result, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(result['configs'])
    fig, axes = plt.subplots(3, len(names), figsize=(7 * len(names), 11), squeeze=False)
    for col, name in enumerate(names):
        block = result['configs'][name]
        arms = list(block['arms'])
        acc = [block['arms'][a]['accuracy'] for a in arms]
        lo = [a - block['arms'][n]['accuracy_ci95'][0] for a, n in zip(acc, arms)]
        hi = [block['arms'][n]['accuracy_ci95'][1] - a for a, n in zip(acc, arms)]
        colors = ['tab:red' if a == 'aura' else 'tab:orange' if a in GATE_ARMS else
                  'tab:gray' if a == 'kv_cache' else 'tab:blue' for a in arms]
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
        ax = axes[2, col]
        kinds = [k for k in ('event', 'repeat', 'distractor', 'context', 'background')
                 if block['write_probability']['aura'].get(k) is not None]
        width = 0.8 / len(GATE_ARMS)
        for i, arm in enumerate(GATE_ARMS):
            prob = block['write_probability'][arm]
            ps = [prob[k] for k in kinds]
            err = [[p - prob['ci95'][k][0] for p, k in zip(ps, kinds)],
                   [prob['ci95'][k][1] - p for p, k in zip(ps, kinds)]]
            ax.bar(np.arange(len(kinds)) + (i - 1) * width, ps, width, yerr=err, capsize=2,
                   label=arm, color=['tab:red', 'tab:orange', 'tab:purple'][i])
        ax.set_xticks(np.arange(len(kinds)), kinds)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel('write probability (pooled, Wilson 95%)')
        ax.set_title(f'{name}: when each gate writes')
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_threshold_sweep(result, path):
    """Accuracy against writes per episode (one point per threshold) and write probability per
    item kind against the threshold, evaluation episodes."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = result['thresholds']
    ev = [r['evaluation'] for r in rows]
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(12, 4.5))
    a0.plot([e['writes_per_episode'] for e in ev], [e['accuracy'] for e in ev], 'o-', c='tab:red')
    for r, e in zip(rows, ev):
        a0.annotate(f"{r['threshold']:g}", (e['writes_per_episode'], e['accuracy']),
                    textcoords='offset points', xytext=(4, 4), fontsize=8)
    a0.set_xlabel('writes per episode')
    a0.set_ylabel('accuracy at the query')
    a0.set_title(f"{result['config']} seed {result['seed']} {result['arm']}: threshold sweep")
    for kind in ('event', 'repeat', 'distractor', 'background'):
        a1.plot([r['threshold'] for r in rows], [e['write_probability'][kind] for e in ev],
                'o-', label=kind)
    a1.set_xscale('log')
    a1.set_xlabel('gate threshold (trained at 0.5)')
    a1.set_ylabel('write probability')
    a1.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
