"""A tiny ACT policy built from scratch with LeRobot (untrained, random weights) and saved as a
LeRobot ``pretrained_model/`` folder with its processors, for proving the ``lerobot`` backend of
``python -m aura_ros.backbones.server`` end to end. Run in the LeRobot env:

    /path/to/lerobot-venv/bin/python bench/lerobot/tiny_act.py OUT_DIR

One 64x64 camera (observation.images.front), a 5-joint state, 5-wide actions, chunk_size 16,
dim_model 64; the dataset statistics are invented (action mean 10, -20, 30, 0, 45, std 5), so
an un-normalised chunk sits visibly around them.
"""
import sys
from pathlib import Path

import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies import make_pre_post_processors
from lerobot.policies.act.configuration_act import ACTConfig
from lerobot.policies.act.modeling_act import ACTPolicy

out = Path(sys.argv[1] if len(sys.argv) > 1 else 'tiny_act') / 'pretrained_model'
torch.manual_seed(0)
config = ACTConfig(
    input_features={'observation.images.front': PolicyFeature(FeatureType.VISUAL, (3, 64, 64)),
                    'observation.state': PolicyFeature(FeatureType.STATE, (5,))},
    output_features={'action': PolicyFeature(FeatureType.ACTION, (5,))},
    chunk_size=16, n_action_steps=16, dim_model=64, n_heads=4, dim_feedforward=128,
    n_encoder_layers=2, n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=8,
    pretrained_backbone_weights=None, device='cpu')
stats = {
    'observation.images.front': {'mean': torch.full((3, 1, 1), 0.5),
                                 'std': torch.full((3, 1, 1), 0.25)},
    'observation.state': {'mean': torch.tensor([0.0, 0.5, -0.5, 1.0, 0.0]),
                          'std': torch.tensor([1.0, 0.5, 0.5, 1.0, 2.0])},
    'action': {'mean': torch.tensor([10.0, -20.0, 30.0, 0.0, 45.0]),
               'std': torch.full((5,), 5.0)},
}
policy = ACTPolicy(config)
policy.save_pretrained(out)
pre, post = make_pre_post_processors(config, dataset_stats=stats)
pre.save_pretrained(out)
post.save_pretrained(out)
print(out, sorted(p.name for p in out.iterdir()))
