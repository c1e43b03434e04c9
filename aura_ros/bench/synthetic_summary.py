"""The synthetic benchmark's summaries and runner: per-seed results of bench/synthetic.py
(``run_seed``, cached per (config, seed, arm)) aggregated into the JSON blocks of
``bench/results/synthetic.json``. Not part of the result cache's key: a change here recomputes
nothing, every summary is rebuilt from the cached results on each run.
"""
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
from tqdm.auto import tqdm

from aura_ros.bench.stats import t_interval, wilson
from aura_ros.bench.synthetic import (
    ABLATIONS,
    ARMS,
    BUDGET_ARMS,
    CALIBRATION_SEED,
    EVAL_SEED,
    GATE_ARMS,
    O1_BASELINES,
    VARIANT_ARMS,
    VARIANT_BUDGETS,
    VARIANT_OF,
    VARIANT_SEEDS,
    BenchSettings,
    run_seed,
    variant_settings,
)
from aura_ros.sim.synthetic import CONFIGS, N_CLASSES, oracle_reader_accuracy, sample_episodes

# The paper's write reductions at parity (issue 31's targets: AURA's interval overlaps or lies
# above the best O(1) baseline's at this many fewer writes than always-write, or more).
PAPER_REDUCTION = {'hard': 6.13, 'easy': 9.19}


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
    out = dict(accuracy=acc, accuracy_ci95=ci, accuracy_per_seed=[r['accuracy'] for r in runs],
               pooled_correct=sum(r['correct'] for r in runs),
               pooled_episodes=sum(r['episodes'] for r in runs), writes_per_episode=writes,
               write_reduction=(always / writes) if writes > 0 else None,
               state_bytes=max(r['state_bytes'] for r in runs))
    for key in ('training_steps', 'gate_status', 'gate_status_trained'):
        if all(key in r for r in runs):
            values = [r[key] for r in runs]
            out[key] = values[0] if key == 'training_steps' and len(set(values)) == 1 \
                else values
    return out


def parity_curve(per_seed, always, best_ci, best_writes):
    """AURA's accuracy against its write reduction, one point per run-time threshold
    (``PARITY_THRESHOLDS``), intervals over seeds. ``write_reduction``: always-write's writes /
    AURA's (the issue's measure), ``write_reduction_vs_best_o1``: the best O(1) baseline's
    writes / AURA's (the paper's); ``at_parity``: AURA's interval overlaps or lies above the
    best O(1) baseline's (``best_ci``). The largest reduction at parity is the best of the
    thresholds on the evaluation episodes themselves (picked on them: optimistic; the trained
    threshold 0.5 is the unpicked figure)."""
    curves = [r['aura']['threshold_curve'] for r in per_seed]
    out = {k: [] for k in ('thresholds', 'accuracy', 'accuracy_ci95', 'writes_per_episode',
                           'write_reduction', 'write_reduction_vs_best_o1', 'at_parity')}
    for i, row in enumerate(curves[0]):
        acc, ci = t_interval([c[i]['accuracy'] for c in curves])
        writes = float(np.mean([c[i]['writes_per_episode'] for c in curves]))
        out['thresholds'].append(row['threshold'])
        out['accuracy'].append(acc)
        out['accuracy_ci95'].append(ci)
        out['writes_per_episode'].append(writes)
        out['write_reduction'].append(always / writes if writes > 0 else None)
        out['write_reduction_vs_best_o1'].append(best_writes / writes if writes > 0 else None)
        out['at_parity'].append(bool(ci[1] >= best_ci[0]))
    reductions = [r for r, ok in zip(out['write_reduction'], out['at_parity']) if ok and r]
    out['best_o1_ci95'] = best_ci
    out['largest_write_reduction_at_parity'] = max(reductions) if reductions else None
    return out


def summarise(config_name, per_seed, settings: BenchSettings):
    """Aggregate per-seed results into the benchmark's JSON block for one config."""
    task = CONFIGS[config_name]
    always = np.mean([r['always_write']['writes_per_episode'] for r in per_seed])
    arms = {arm: _arm_block([r[arm] for r in per_seed], always) for arm in ARMS}
    best = max(O1_BASELINES, key=lambda a: arms[a]['accuracy'])
    aura, best_arm = arms['aura'], arms[best]
    wp = {arm: write_probabilities(per_seed, arm) for arm in GATE_ARMS + BUDGET_ARMS}
    ablation = {}
    for key, _, _ in ABLATIONS:
        ablation[key] = dict(_arm_block([r['aura']['ablation'][key] for r in per_seed], always),
                             write_probability=write_probabilities(per_seed, 'aura', key))
    within = aura['accuracy'] >= best_arm['accuracy_ci95'][0]
    overlaps = aura['accuracy_ci95'][1] >= best_arm['accuracy_ci95'][0]
    best_writes = best_arm['writes_per_episode']

    def selective(arm):
        p = wp[arm]
        return {kind: bool(p[kind] is not None and p['event'] and p[kind] <= 0.25 * p['event'])
                for kind in ('repeat', 'distractor')}

    so = arms['aura_surprise_only']
    eval_eps = sample_episodes(task, settings.eval_episodes, np.random.default_rng(EVAL_SEED))
    calib = sample_episodes(task, settings.eval_episodes, np.random.default_rng(CALIBRATION_SEED))
    return dict(
        seeds=len(per_seed), task=task.to_dict(), chance=1 / N_CLASSES,
        task_ceiling_reader=oracle_reader_accuracy(task, eval_eps, calib),
        best_o1_arm=best,
        parity=dict(
            aura_accuracy=aura['accuracy'], best_o1_arm=best,
            best_o1_ci95=best_arm['accuracy_ci95'], aura_within_or_above_best_ci=bool(within),
            aura_ci_overlaps_or_above_best_ci=bool(overlaps),
            # issue 31's target: the intervals overlap at >= the paper's write reduction vs
            # always-write (trained threshold)
            target_write_reduction=PAPER_REDUCTION.get(config_name),
            meets_target=bool(overlaps and config_name in PAPER_REDUCTION
                              and (aura['write_reduction'] or 0)
                              >= PAPER_REDUCTION[config_name]),
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
        write_probability=wp, gate_input_ablation=ablation, arms=arms,
        parity_curve=parity_curve(per_seed, always, best_arm['accuracy_ci95'], best_writes))


def summarise_variants(results, settings: BenchSettings):
    """{variant: {budget: block}} of ``results`` {(variant, budget): [per-seed results]}:
    aura against always-write (the same memory) and the state of its gate."""
    out = {}
    for (name, budget), per_seed in sorted(results.items()):
        aura = [r['aura'] for r in per_seed]
        always = [r['always_write'] for r in per_seed]
        horizon = CONFIGS[name].horizon
        acc = float(np.mean([r['accuracy'] for r in aura]))
        ref = float(np.mean([r['accuracy'] for r in always]))
        writes = float(np.mean([r['writes_per_episode'] for r in aura]))
        status = [r['gate_status'] for r in aura]
        out.setdefault(name, {'task': CONFIGS[name].to_dict(), 'budget_of': VARIANT_OF[name],
                              'budgets': {}})
        out[name]['budgets'][f'{budget:g}'] = dict(
            training_steps=aura[0]['training_steps'], seeds=len(per_seed),
            aura_accuracy=acc, aura_accuracy_per_seed=[r['accuracy'] for r in aura],
            always_write_accuracy=ref, aura_minus_always_write=acc - ref,
            within_003_of_always_write=bool(acc >= ref - 0.03),
            aura_writes_per_episode=writes, write_reduction=horizon / writes if writes else None,
            gate_status=status, gate_status_trained=[r.get('gate_status_trained')
                                                     for r in aura],
            collapsed=any(s != 'selective' for s in status),
            write_probability=write_probabilities(per_seed, 'aura'))
    return out


def run(configs, seeds, settings: BenchSettings, jobs=None, progress=True, cache_dir=None,
        variants=(), variant_seeds=VARIANT_SEEDS, variant_budgets=VARIANT_BUDGETS):
    """{'configs': {name: summary}, 'parity_curve': {name: curve}} for the given configs and
    seeds (``seeds``: a count from 0, or the seeds), processes in parallel; with ``variants``,
    also {'variants': ...} (``run_variants``' arms at each budget). With ``cache_dir``, each
    finished (config, seed, arm) is kept there and reused by a later run with the same settings
    and code, so an interrupted run resumes instead of starting over."""
    jobs = jobs or min(2, os.cpu_count() or 1)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    tasks = [(name, seed, None, settings, ARMS) for name in configs for seed in seeds]
    tasks += [(name, seed, budget, variant_settings(settings, name, budget), VARIANT_ARMS)
              for name in variants for budget in variant_budgets for seed in variant_seeds]
    # longest first: keeps both workers busy to the end
    tasks.sort(key=lambda t: -t[3].train_steps[t[0]] * CONFIGS[t[0]].horizon * len(t[4]))
    done = {}
    bar = tqdm(total=len(tasks), desc='synthetic (config x seed)', disable=not progress)
    if jobs == 1:
        for name, seed, budget, s, arms in tasks:
            done[name, seed, budget] = run_seed(name, seed, s, progress, cache_dir, arms)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_seed, name, seed, s, False, cache_dir, arms):
                       (name, seed, budget) for name, seed, budget, s, arms in tasks}
            for fut in as_completed(futures):
                done[futures[fut]] = fut.result()
                bar.update()
    bar.close()
    blocks = {name: summarise(name, [done[name, seed, None] for seed in seeds], settings)
              for name in configs}
    out = {'benchmark': 'synthetic', 'settings': settings.__dict__, 'seeds': seeds,
           'configs': blocks,
           'parity_curve': {name: block['parity_curve'] for name, block in blocks.items()}}
    if variants:
        out['variants'] = summarise_variants(
            {(name, budget): [done[name, seed, budget] for seed in variant_seeds]
             for name in variants for budget in variant_budgets}, settings)
    return out
