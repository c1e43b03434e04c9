"""In the LeRobot env: the lerobot backend in-process against LeRobot's own pipeline on the same
observation (preprocessor, ACTPolicy.predict_action_chunk, postprocessor step by step) and a
hook on the encoder: both differences should be 0.

    PYTHONPATH=. /path/to/lerobot-venv/bin/python bench/lerobot/crosscheck_act.py FOLDER
"""
import sys

import numpy as np
import torch
from lerobot.policies import make_pre_post_processors
from lerobot.policies.act.modeling_act import ACTPolicy

from aura_ros.backbones import build_backbone

folder = sys.argv[1]
ours = build_backbone(dict(adapter='lerobot', model_path=folder, image_size=64, action_dim=5,
                           chunk_size=16))
policy = ACTPolicy.from_pretrained(folder)
pre, post = make_pre_post_processors(policy.config, pretrained_path=folder)
image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
state = np.array([0.1, 0.4, -0.6, 1.2, 0.0], np.float32)
enc, chunk = ours.infer(image, state, 'pick up the cube')
grab = {}
policy.model.encoder.register_forward_hook(lambda m, a, o: grab.setdefault('x', o))
frames = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
batch = pre({'observation.images.front': frames,
             'observation.state': torch.from_numpy(state)[None], 'task': ['pick up the cube']})
raw = policy.predict_action_chunk(batch)
ref = torch.stack([post(raw[:, i]) for i in range(raw.shape[1])], 1)[0].numpy()
print('chunk max |ours - LeRobot|', float(np.abs(chunk - ref).max()))
difference = (enc.features - grab['x'].mean(0)[0]).abs().max()
print('features max |ours - encoder mean|', float(difference))
print('raw (normalised) chunk row 0', raw[0, 0].numpy().round(3), '-> post', ref[0].round(3))
