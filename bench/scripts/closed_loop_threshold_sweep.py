"""Calibration-seed sweep of the shipped planar AURA's run-time gate threshold (not the
evaluation seeds): does a lower threshold write more cue onsets without writing distractors?

    .venv/bin/python bench/scripts/closed_loop_threshold_sweep.py   # from the repo root, ~15 min
"""
import json

import torch

from aura_ros.bench import closed_loop as cl
from aura_ros.paths import package_share
from aura_ros.train.__main__ import load_backbone

torch.set_num_threads(1)
params = package_share('aura_ros') + '/config/default.yaml'
backbone = load_backbone(params)
memdir = cl.default_memory_dir(params)
out = {}
for variant in ('memory', 'memory_switch'):
    for thr in (0.5, 0.3, 0.2, 0.1, 0.05):
        memory = cl.load_arm('aura', memdir)
        memory.set_gate_threshold(thr)
        seeds = range(cl.CALIBRATION_SEED, cl.CALIBRATION_SEED + 200)
        logs = cl.rollouts(backbone, memory, variant, seeds, progress=False)
        s = cl.summarise(logs)
        wp = {k: (v['writes'], v['frames']) for k, v in s['write_probability'].items()}
        out[f'{variant}@{thr}'] = dict(success=s['success'], writes=s['writes_per_episode'], wp=wp)
        print(variant, thr, round(s['success'], 3), round(s['writes_per_episode'], 2), wp,
              flush=True)
json.dump(out, open('bench/results/closed_loop_threshold_sweep.json', 'w'), indent=1)
