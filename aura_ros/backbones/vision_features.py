"""``vision_features``: any transformers vision (or vision-language) model as a frozen encoder,
plus a small trained action head.

The model folder holds the encoder (``save_pretrained``: config.json + model.safetensors, any
``AutoModel`` class with pixel inputs, e.g. SigLIP, ViT, DINOv2; for a vision-language model the
vision tower is used) and ``action_head.safetensors``: an MLP from [features, state] to a
normalised action chunk (written by ``ActionHead.save``). Pixel normalisation comes from
``preprocessor_config.json`` (image_mean / image_std) when present, else 0.5 / 0.5.
"""
import json

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel

from aura_ros.backbones.base import Backbone, Encoding, local_model_dir, register_backbone

FEATURE_SOURCES = ('pooler', 'mean', 'cls')


class ActionHead(nn.Module):
    """[features (F), state (S)] -> normalised action chunk (C, A)."""

    def __init__(self, feature_dim, state_dim, chunk_size, action_dim, hidden=256):
        super().__init__()
        self.shape = dict(feature_dim=feature_dim, state_dim=state_dim, chunk_size=chunk_size,
                          action_dim=action_dim, hidden=hidden)
        self.net = nn.Sequential(nn.Linear(feature_dim + state_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, chunk_size * action_dim))

    def forward(self, features, state):
        out = self.net(torch.cat([features, state], dim=-1))
        return out.view(*out.shape[:-1], self.shape['chunk_size'], self.shape['action_dim'])

    def save(self, path):
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path),
                  metadata={'action_head': json.dumps(self.shape)})

    @classmethod
    def load(cls, path):
        from safetensors import safe_open
        with safe_open(str(path), framework='pt') as f:
            meta = f.metadata() or {}
        if 'action_head' not in meta:
            raise ValueError(f'{path}: not an aura_ros action head (no action_head metadata)')
        head = cls(**json.loads(meta['action_head']))
        head.load_state_dict(load_file(str(path)))
        return head.eval()


@register_backbone('vision_features')
class VisionFeaturesBackbone(Backbone):
    def __init__(self, config, base_dir=None):
        super().__init__(config)
        if config.feature_source not in FEATURE_SOURCES:
            raise ValueError(f'vision_features: feature_source must be one of {FEATURE_SOURCES},'
                             f' got {config.feature_source!r}')
        folder = local_model_dir(config, base_dir)
        model_config = AutoConfig.from_pretrained(folder, local_files_only=True,
                                                  trust_remote_code=config.trust_remote_code)
        model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                          trust_remote_code=config.trust_remote_code,
                                          dtype=self.dtype)
        if hasattr(model, 'vision_model') and not hasattr(model, 'embeddings'):
            model = model.vision_model  # a vision-language model: use its vision tower
        self.model = model.to(self.device).eval()
        vision_config = getattr(model_config, 'vision_config', model_config)
        expected = getattr(vision_config, 'image_size', config.image_size)
        if isinstance(expected, int) and expected != config.image_size:
            raise ValueError(f'vision_features: backbone.image_size is {config.image_size} but '
                             f'the encoder was built for {expected}')
        self.feature_dim = vision_config.hidden_size
        head_path = folder / config.options.get('action_head', 'action_head.safetensors')
        if not head_path.is_file():
            raise FileNotFoundError(f'vision_features: action head not found: {head_path}')
        self.head = ActionHead.load(head_path).to(self.device)
        shape = self.head.shape
        problems = [f'{k} {shape[k]} != {v}' for k, v in
                    (('feature_dim', self.feature_dim), ('chunk_size', config.chunk_size),
                     ('action_dim', config.action_dim)) if shape[k] != v]
        if problems:
            raise ValueError(f'vision_features: action head does not match: {problems}')
        pre = folder / 'preprocessor_config.json'
        stats = json.loads(pre.read_text()) if pre.is_file() else {}
        self.pixel_mean = torch.tensor(stats.get('image_mean', [0.5] * 3)).view(3, 1, 1)
        self.pixel_std = torch.tensor(stats.get('image_std', [0.5] * 3)).view(3, 1, 1)

    def pixels(self, image):
        size = self.config.image_size
        if image.shape[:2] != (size, size):
            raise ValueError(f'image is {image.shape[1]}x{image.shape[0]}, backbone expects '
                             f'{size}x{size}')
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        return ((x - self.pixel_mean) / self.pixel_std)[None].to(self.device, self.dtype)

    @torch.inference_mode()
    def encode(self, image, state, instruction=''):
        out = self.model(pixel_values=self.pixels(image))
        source = self.config.feature_source
        if source == 'pooler' and getattr(out, 'pooler_output', None) is not None:
            features = out.pooler_output[0]
        elif source == 'cls':
            features = out.last_hidden_state[0, 0]
        else:
            features = out.last_hidden_state[0].mean(0)
        features = features.float().cpu()
        state = torch.from_numpy(self.normalise_state(state))
        if len(state) != self.head.shape['state_dim']:
            raise ValueError(f'state has {len(state)} entries, the action head expects '
                             f"{self.head.shape['state_dim']}")
        return Encoding(features=features, cache=state)

    @torch.inference_mode()
    def act(self, encoding, noise_seed=None):   # deterministic head: no noise
        chunk = self.head(encoding.features[None].to(self.device), encoding.cache[None])[0]
        return self.unnormalise_actions(chunk.float().cpu().numpy())

    def close(self):
        self.model = self.head = None
