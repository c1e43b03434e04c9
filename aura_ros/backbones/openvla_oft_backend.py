"""Server-side OpenVLA-OFT backend, run inside the OpenVLA-OFT env, never in aura_ros's own.

That env needs the openvla-oft repository installed (``pip install -e openvla-oft``, which
brings transformers 4.40.1, and its ``prismatic`` and ``experiments`` packages). Serve it with

    python -m aura_ros.backbones.server --params config/openvla_oft.yaml \\
        --backend openvla_oft

The backbone block's ``options`` carry what the OFT helpers take: ``pretrained_checkpoint``
(defaults to model_path), ``unnorm_key``, ``num_images_in_input``, ``use_proprio``,
``use_l1_regression``, ``center_crop``. ``trust_remote_code`` must be true in that parameter
file: OpenVLA's modelling code ships with its checkpoint.

Features for the memory: the mean of the language model's last hidden states over the prompt
(image patches + instruction), from the same forward pass that predicts the action chunk.
This module is not exercised in aura_ros's CI (no OpenVLA weights or env here); the gRPC
service it is served by is, through the ``remote`` adapter.
"""
from types import SimpleNamespace

import numpy as np
import torch

from aura_ros.backbones.base import Backbone, BackboneConfig, Encoding, local_model_dir


class OpenVLAOFTLocal(Backbone):
    @classmethod
    def from_block(cls, block, base_dir=None):
        config = BackboneConfig.from_dict(block)
        if not config.trust_remote_code:
            raise ValueError('openvla_oft needs trust_remote_code: true in its parameter file '
                             '(OpenVLA ships its modelling code with the checkpoint)')
        return cls(config, base_dir)

    def __init__(self, config, base_dir=None):
        super().__init__(config)
        # Imports from the openvla-oft repository (only present in its env).
        from experiments.robot.openvla_utils import (
            get_action_head,
            get_processor,
            get_proprio_projector,
            get_vla,
        )
        folder = local_model_dir(config, base_dir)
        o = config.options
        self.cfg = SimpleNamespace(
            pretrained_checkpoint=str(o.get('pretrained_checkpoint', folder)),
            use_l1_regression=o.get('use_l1_regression', True), use_diffusion=False,
            use_film=o.get('use_film', False),
            num_images_in_input=int(o.get('num_images_in_input', 1)),
            use_proprio=o.get('use_proprio', True), center_crop=o.get('center_crop', True),
            num_open_loop_steps=config.chunk_size, unnorm_key=o.get('unnorm_key', ''),
            load_in_8bit=False, load_in_4bit=False)
        self.vla = get_vla(self.cfg)
        self.processor = get_processor(self.cfg)
        self.action_head = get_action_head(self.cfg, self.vla.llm_dim)
        self.proprio_projector = (get_proprio_projector(self.cfg, self.vla.llm_dim,
                                                        proprio_dim=len(config.state_mean) or 8)
                                  if self.cfg.use_proprio else None)
        self.feature_dim = self.vla.llm_dim

    @torch.inference_mode()
    def encode(self, image, state, instruction=''):
        from experiments.robot.openvla_utils import get_vla_action
        captured = {}

        def grab(module, args, output):  # last hidden states of the language model
            captured['hidden'] = output[0] if isinstance(output, tuple) else output

        hook = self.vla.language_model.model.norm.register_forward_hook(grab)
        try:
            obs = {'full_image': np.asarray(image, np.uint8), 'state': np.asarray(state)}
            actions = get_vla_action(self.cfg, self.vla, self.processor, obs,
                                     instruction or self.config.instruction,
                                     action_head=self.action_head,
                                     proprio_projector=self.proprio_projector)
        finally:
            hook.remove()
        features = captured['hidden'][0].float().mean(0).cpu()
        return Encoding(features=features, cache=np.asarray(actions, np.float32))

    def act(self, encoding, noise_seed=None):
        # OFT predicts the chunk in the same pass as the features (already un-normalised by
        # its own statistics, selected with unnorm_key).
        return encoding.cache[:, :self.config.action_dim]
