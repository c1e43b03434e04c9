"""The training-budget cliff of the gate on a small noisy recording (bench/notes.md, "Recordings,
a closed gate"): the default recipe on the 40-episode recording of
test/train/test_memory_fit.py (`noisy_recording`, the same tiny memory), data seeds 0-2, at
1,000 and 1,500 steps; p(write) at the cue onset and writes elsewhere on 100 fresh episodes.
About 4 minutes on one core:

    .venv/bin/python bench/scripts/gate_cliff.py
    .venv/bin/python bench/scripts/gate_cliff.py --sparsity-weight 10 --steps 1000

The recipe has had no rate cap since issue 31; ``--sparsity-weight 10`` puts the old one back
(``AuraConfig.sparsity_weight`` x relu(rate - target_write_rate)), which closes the gate here
(bench/notes.md, "The rate cap closes the gate").
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'test' / 'train'))
from test_memory_fit import noisy_recording  # noqa: E402

from aura_ros.train.memory_fit import fit_memory, padded  # noqa: E402


def main(steps=(1000, 1500), seeds=(0, 1, 2), **config):
    torch.set_num_threads(1)
    for n in steps:
        for seed in seeds:
            train, _ = noisy_recording(40, seed=seed)
            test, onsets = noisy_recording(100, seed=1000 + seed)
            memory = fit_memory('aura', train, [0.05, 0.05], steps=n, batch=32, seed=seed,
                                progress=False, d_key=8, d_value=8, head_hidden=32,
                                feature_proj_dim=16, gate_hidden=8, value_hidden=16,
                                **config)
            features, base, _, _ = padded(test)
            with torch.no_grad():
                writes = memory.forward_sequence(features, base, gate_mode='hard').writes
            rows = torch.arange(len(onsets))
            at_onset = float(writes[rows, onsets].mean())
            elsewhere = float(writes.sum(1).mean()) - at_onset
            print(f'steps {n} seed {seed}: p(write) at the onset {at_onset:.2f}, other writes '
                  f'per episode {elsewhere:.2f}, frame 0 {float(writes[:, 0].mean()):.2f}',
                  flush=True)


if __name__ == '__main__':
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', default='1000,1500')
    parser.add_argument('--seeds', default='0,1,2')
    parser.add_argument('--sparsity-weight', type=float, default=None,
                        help="the rate cap's weight (default: the recipe's, 0)")
    args = parser.parse_args()
    extra = {} if args.sparsity_weight is None else {'sparsity_weight': args.sparsity_weight}
    main(tuple(int(s) for s in args.steps.split(',')),
         tuple(int(s) for s in args.seeds.split(',')), **extra)
