"""The gate mechanism on a tiny synthetic task, as a learning check that lives here rather than
in the test suite (40 s of training on 2 cores): events and repeats look alike one observation
at a time (test/sim/test_synthetic.py); only the memory state tells them apart. The
surprise-only gate, which sees nothing but signals computed against that state, should write
the events and skip the repeats; the feature gate, trained the same way (the control that can
only see the observation), can only write both alike. Writes
bench/results/gate_mechanism.json with both arms' accuracy and p(write) per item kind, and the
checks:

    python bench/scripts/gate_mechanism.py

Checks (the former test's): surprise-only accuracy > 0.9, p(write | event) > 0.9,
p(write | repeat) < 0.25 p(write | event); feature gate |p(event) - p(repeat)| < 0.15 and its
accuracy at least 0.1 below. Exit status 1 if any fails.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from aura_ros.core import AuraConfig, build_memory
from aura_ros.core.training import TrainSchedule, train_memory
from aura_ros.sim.synthetic import EVENT, N_CLASSES, REPEAT, TINY, batch_sampler, sample_episodes

OUT = Path('bench/results/gate_mechanism.json')
STEPS = 500


def main():
    torch.set_num_threads(1)
    eps = sample_episodes(TINY, 500, np.random.default_rng(9))
    arms = {}
    for kind in ('aura_surprise_only', 'feature_gate'):
        torch.manual_seed(0)
        model = build_memory(AuraConfig(feature_dim=TINY.obs_dim, action_dim=N_CLASSES,
                                        kind=kind, action_mode='full', target_write_rate=0.06))
        train_memory(model, batch_sampler(TINY), 'ce', TrainSchedule(steps=STEPS, lr=5e-3),
                     progress=True)
        with torch.no_grad():
            out = model.forward_sequence(eps.obs, gate_mode='hard')
        arms[kind] = dict(
            accuracy=float((out.actions[:, -1].argmax(-1) == eps.answer).float().mean()),
            p_write_event=float(out.writes[eps.kinds == EVENT].mean()),
            p_write_repeat=float(out.writes[eps.kinds == REPEAT].mean()))
    s, f = arms['aura_surprise_only'], arms['feature_gate']
    checks = {
        'surprise_only_accurate': s['accuracy'] > 0.9,
        'surprise_only_writes_events': s['p_write_event'] > 0.9,
        'surprise_only_skips_repeats': s['p_write_repeat'] < 0.25 * s['p_write_event'],
        'feature_gate_writes_both_alike': abs(f['p_write_event'] - f['p_write_repeat']) < 0.15,
        'feature_gate_less_accurate': f['accuracy'] < s['accuracy'] - 0.1}
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                            text=True).stdout.strip()
    result = dict(task='synthetic easy, tiny (horizon 24, 1-2 events, 2-3 repeats, no '
                  'distractors)', training_steps=STEPS, evaluation_episodes=500, arms=arms,
                  checks=checks, all_hold=all(checks.values()), commit=commit)
    OUT.write_text(json.dumps(result, indent=1) + '\n')
    print(json.dumps(result, indent=1))
    return 0 if result['all_hold'] else 1


if __name__ == '__main__':
    sys.exit(main())
