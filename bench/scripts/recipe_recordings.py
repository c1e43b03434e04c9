"""Issue 31's recipe check on the recordings' calibration data: the learning curve's smallest
point (planar task v2, the first 50 recorded episodes, `train episodes`' own split), AURA
trained with a candidate recipe and scored on that point's *validation* split (never the
closed-loop evaluation seeds): writes per episode, p(write) per FrameTruth kind, the action
error on memory frames beside always-write and no memory. Needs the curve's recordings
(`python -m aura_ros.bench train-from-recordings` makes them); the features are extracted into
WORK/recipe_features (the curve's own cache may hold another backbone build's). The two runs of
bench/results/recipe_search/planar50_*.json (the recipe, then the old rate cap put back
with the recordings' old target rate, 0.08):

    .venv/bin/python bench/scripts/recipe_recordings.py --name planar50_nocap
    .venv/bin/python bench/scripts/recipe_recordings.py \\
        --gate '{"sparsity_weight": 10, "target_write_rate": 0.08}' --arms aura \\
        --name planar50_shipped

One JSON per run under bench/results/recipe_search/ (skipped when it exists).
"""
import argparse
import json
import time
from pathlib import Path

import torch

from aura_ros.bench.train_from_recordings import CHUNK
from aura_ros.paths import package_share
from aura_ros.train.episodes import Settings, evaluate, prepare
from aura_ros.train.memory_fit import fit_memory

OUT = Path(__file__).resolve().parents[1] / 'results' / 'recipe_search'


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work', default='bench/results/tfr_work/planar')
    p.add_argument('--params', default=None,
                   help="parameter file (default: the installed package's default.yaml, the "
                        "curve's)")
    p.add_argument('--cache-dir', default=None, help='features (default: WORK/recipe_features)')
    p.add_argument('--episodes', type=int, default=50)
    p.add_argument('--arms', default='aura,always_write,no_memory')
    p.add_argument('--steps', type=int, default=2000)
    p.add_argument('--gate', default='{}', help='JSON: AuraConfig fields of the gated arms')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--name', required=True)
    args = p.parse_args()
    out = OUT / f'{args.name}.json'
    if out.exists():
        print(f'{out} exists: skipped')
        return
    torch.set_num_threads(1)
    work = Path(args.work)
    bags = sorted(b for b in (work / 'bags').glob('chunk_*') if b.is_dir() and
                  not b.name.endswith('_logs'))[:args.episodes // CHUNK]
    settings = Settings(steps=args.steps, seed=args.seed,
                        cache_dir=args.cache_dir or str(work / 'recipe_features'))
    params = args.params or str(Path(package_share('aura_ros')) / 'config' / 'default.yaml')
    prepared = prepare([str(b) for b in bags], params, f'/tmp/recipe_{args.name}', settings)
    gate = json.loads(args.gate)
    results = {}
    for arm in args.arms.split(','):
        start = time.time()
        memory = None
        if arm != 'no_memory':
            memory = fit_memory(arm, prepared.train_data, prepared.action_std,
                                steps=args.steps, seed=args.seed,
                                **(gate if arm.startswith('aura') else {}))
        r = evaluate(memory, prepared.val_data, prepared.val_kinds)
        r.pop('trace')
        r['train_seconds'] = time.time() - start
        results[arm] = r
        wp = r.get('write_probability', {})
        print(arm, {k: r[k] for k in ('action_mse', 'action_mse_memory_frames',
                                      'writes_per_episode')},
              {k: round(v['p'], 3) for k, v in wp.items()}, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(name=args.name, bags=[str(b) for b in bags],
                                   episodes=args.episodes, steps=args.steps, gate=gate,
                                   seed=args.seed, validation=results), indent=1))


if __name__ == '__main__':
    main()
