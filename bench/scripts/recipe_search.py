"""Issue 31's recipe search on calibration episodes only: train one arm of the synthetic
benchmark exactly as ``run_seed`` trains it (``_fit_arm``: same data, seed and schedule) under
a candidate recipe, then score it on *calibration* episodes (a seed of their own, neither the
training episodes nor the benchmark's evaluation episodes) at a few run-time gate thresholds.
One JSON per run under bench/results/recipe_search/ (skipped when it exists); the five runs
there (made at commit 573fa8c, when the rate cap was still the default):

    S=bench/scripts/recipe_search.py
    .venv/bin/python $S --steps 4000 --gate '{"sparsity_weight": 0}' --name hard_s0_aura_nocap_4000
    .venv/bin/python $S --steps 2000 --gate '{"sparsity_weight": 0}' --name hard_s0_aura_nocap_2000
    .venv/bin/python $S --steps 4000 --gate '{"sparsity_weight": 10}' \\
        --name hard_s0_aura_shipped_4000
    .venv/bin/python $S --steps 2000 --arm always_write --name hard_s0_always_2000
    .venv/bin/python $S --steps 4000 --arm gru_dense --name hard_s0_gru_4000

(their calibration and evaluation episodes predate the new evaluation set; the 4,000-step runs
take ~30 min of one core each.) After the issue-31 headline, at commit 4dc1e9b, the budget
check (does a longer budget close the gap to the GRU?), 16-60 min of one core each:

    .venv/bin/python $S --steps 8000 --arm aura --name hard_s0_aura_8000
    .venv/bin/python $S --steps 8000 --arm gru_dense --name hard_s0_gru_dense_8000
    .venv/bin/python $S --steps 4000 --arm aura --name hard_s0_aura_4000   # today's code

``--gate`` overrides fields of ``BenchSettings.gate`` (AuraConfig fields of the learned-gate
arms); ``--arm always_write`` etc. give the fixed arms' calibration score at the same budget.
"""
import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from aura_ros.bench.synthetic import (
    GATE_ARMS,
    SWEEP_CALIBRATION_SEED,
    BenchSettings,
    _fit_arm,
    evaluate,
)
from aura_ros.bench.synthetic_summary import write_probabilities
from aura_ros.sim.synthetic import CONFIGS, sample_episodes

CALIBRATION_SEED = SWEEP_CALIBRATION_SEED     # the threshold sweep's calibration episodes
OUT = Path(__file__).resolve().parents[1] / 'results' / 'recipe_search'


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default='hard')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--arm', default='aura')
    p.add_argument('--steps', type=int, required=True)
    p.add_argument('--warmup', type=float, default=None, help='warm-up fraction')
    p.add_argument('--gate', default='{}', help='JSON: overrides of BenchSettings.gate')
    p.add_argument('--curriculum', default=None, help='JSON: BenchSettings.curriculum')
    p.add_argument('--thresholds', default='0.5,0.3,0.15,0.05')
    p.add_argument('--episodes', type=int, default=2000)
    p.add_argument('--name', required=True)
    args = p.parse_args()
    out = OUT / f'{args.name}.json'
    if out.exists():
        print(f'{out} exists: skipped')
        return
    torch.set_num_threads(1)
    settings = BenchSettings()
    settings.train_steps = dict(settings.train_steps, **{args.config: args.steps})
    settings.gate = dict(settings.gate, **json.loads(args.gate))
    if args.warmup is not None:
        settings.warmup_frac = args.warmup
    if args.curriculum is not None:
        settings.curriculum = json.loads(args.curriculum)
    start = time.time()
    model, _, _ = _fit_arm(args.arm, args.config, args.seed, settings, None, True)
    train_s = time.time() - start
    calib = sample_episodes(CONFIGS[args.config], args.episodes,
                            np.random.default_rng(CALIBRATION_SEED))
    rows = []
    thresholds = [float(t) for t in args.thresholds.split(',')] if args.arm in GATE_ARMS \
        else [None]
    for threshold in thresholds:
        if threshold is not None:
            model.config.gate_threshold = threshold
        r = evaluate(model, calib, generator_seed=args.seed)
        row = dict(threshold=threshold, accuracy=r['accuracy'],
                   writes_per_episode=r['writes_per_episode'])
        if args.arm in GATE_ARMS:
            wp = write_probabilities([{args.arm: r}], args.arm)
            row['write_probability'] = {k: wp[k] for k in ('event', 'repeat', 'distractor',
                                                           'context', 'background')}
        rows.append(row)
        print(json.dumps(row), flush=True)
    os.makedirs(OUT, exist_ok=True)
    out.write_text(json.dumps(dict(
        name=args.name, config=args.config, seed=args.seed, arm=args.arm, steps=args.steps,
        settings=settings.__dict__, calibration_seed=CALIBRATION_SEED, train_seconds=train_s,
        rows=rows), indent=1))


if __name__ == '__main__':
    main()
