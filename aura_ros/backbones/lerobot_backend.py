"""Server-side LeRobot backend: a local LeRobot policy checkpoint served to robot arms, run
inside a LeRobot env (``bench/lerobot/setup_env.sh``), never in aura_ros's own (LeRobot is
only imported by ``load_policy``):

    PYTHONPATH=/path/to/aura_ros python -m aura_ros.backbones.server \\
        --params config/lerobot_act.yaml --backend lerobot

``model_path`` is a ``pretrained_model/`` folder as LeRobot saves it: ``config.json`` (its
``type`` names the policy), ``model.safetensors``, ``policy_preprocessor.json`` /
``policy_postprocessor.json`` and their state ``.safetensors``. safetensors only; processor
steps must be named by LeRobot's step registry (a step given as an import path is refused:
that would run arbitrary code). With ``local_files_only`` (the default) the hub is offline.

Per observation (one rgb frame, the joint state, the instruction) LeRobot's batch is
    observation.images.<camera_key>  float32 (B, 3, H, W) in [0, 1], resized (bilinear, as
                                     LeRobot's async server does) to the checkpoint's H x W
    observation.state                float32 (B, state_dim)
    task                             [instruction] (the block's ``instruction`` when empty)
then LeRobot's own preprocessor (normalisation, tokenisation, device), ``predict_action_chunk``
(``select_action`` as a 1-action chunk where a policy has no chunk call), and LeRobot's own
postprocessor, step by step over the chunk (un-normalisation, as LeRobot's policy server does).
Options (``backbone.options``): ``camera_key`` (default: the checkpoint's first camera in
``input_features``), ``other_cameras`` for further cameras of the checkpoint: ``error``
(default), ``copy`` (the same frame), ``zeros`` (a black frame) or ``omit`` (left out: SmolVLA
skips missing cameras, ACT cannot); ``joint_units``: ``rad`` (default) or ``deg`` for a policy
trained on degrees (LeRobot's SO-101 follower records them; ``train export-lerobot`` writes
them): the robot's state (radians) is converted before LeRobot's preprocessor and the chunk
back to radians after its postprocessor, so the robot side stays in radians.

Features for the memory, from the same forward pass that predicts the chunk (the module's
``forward`` wrapped on the instance: a forward hook would miss SmolVLA, which calls
``vlm_with_expert.forward`` directly):
    act      the mean over tokens (latent, state, every image-patch token) of the transformer
             encoder output (``policy.model.encoder``): dim_model values.
    smolvla  the mean of the VLM prefix hidden states (images, language, state tokens; after the
             VLM's final norm; padding tokens left out) from the prefix pass of
             ``policy.model.vlm_with_expert``: the VLM's text hidden size (960 for SmolVLM2-500M).
Widths (feature_dim, action_dim, chunk_size) are measured by one warm-up pass at start and
reported to ``Info`` with the wire image size (the block's ``image_size``) and state_dim (the
checkpoint's ``observation.state``); a parameter file that disagrees is refused by the robot's
``remote`` adapter. Sampling noise (SmolVLA's flow matching) is seeded by the request's seed
and scaled by ``noise_scale``; ACT's chunk is deterministic. ``dtype`` is the checkpoint's own.
"""
import dataclasses
import inspect
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aura_ros.backbones.base import Backbone, Encoding, local_model_dir, register_backbone

STATE_KEY, IMAGE_PREFIX, TASK_KEY = 'observation.state', 'observation.images.', 'task'
PROCESSORS = ('policy_preprocessor.json', 'policy_postprocessor.json')
OTHER_CAMERAS = ('error', 'copy', 'zeros', 'omit')


def _act_features(policy):
    """(module to tap, (args, kwargs, output) -> (B, F) features or None)."""
    return policy.model.encoder, lambda args, kwargs, out: out.mean(0)   # (S, B, D) -> (B, D)


def _smolvla_features(policy):
    def pool(args, kwargs, out):
        hidden = out[0][0]                  # prefix pass: [prefix, None]; denoising: [None, x]
        if hidden is None:
            return None
        mask = kwargs['attention_mask'].any(-1, keepdim=True).to(hidden.dtype)  # (B, L, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    return policy.model.vlm_with_expert, pool


FEATURES = {'act': _act_features, 'smolvla': _smolvla_features}


def read_checkpoint(folder):
    """The checkpoint's config.json (a dict), after checking the folder holds a LeRobot policy
    whose type has features defined here and processors named by LeRobot's registry."""
    folder = Path(folder)
    missing = [n for n in ('config.json', 'model.safetensors', *PROCESSORS)
               if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f'{folder} is not a LeRobot pretrained_model folder: no '
                                f'{", ".join(missing)}')
    config = json.loads((folder / 'config.json').read_text())
    if config.get('type') not in FEATURES:
        raise ValueError(f'LeRobot policy type {config.get("type")!r} ({folder}/config.json) '
                         f'is not served: features are defined for {sorted(FEATURES)}')
    for name in PROCESSORS:
        steps = json.loads((folder / name).read_text()).get('steps', [])
        named = [s.get('class', '?') for s in steps if not s.get('registry_name')]
        if named:
            raise ValueError(f'{folder / name} names steps by import path {named}, not by '
                             f"LeRobot's registry: refused (it would run arbitrary code)")
    return config


def load_policy(folder, device, local_files_only=True):
    """(policy, preprocessor, postprocessor) of a checked checkpoint folder: LeRobot's own
    loaders (safetensors). The test seam: tests replace this function."""
    if local_files_only:
        os.environ['HF_HUB_OFFLINE'] = '1'     # a SmolVLA's VLM comes from the local cache
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies import get_policy_class, make_pre_post_processors
    cfg = PreTrainedConfig.from_pretrained(folder)
    cfg.device = device
    policy = get_policy_class(cfg.type).from_pretrained(folder, config=cfg)
    overrides = []
    for name in PROCESSORS:     # device override only where the pipeline has a device step
        steps = json.loads((Path(folder) / name).read_text()).get('steps', [])
        has_device = any(s.get('registry_name') == 'device_processor' for s in steps)
        overrides.append({'device_processor': {'device': device}} if has_device else {})
    pre, post = make_pre_post_processors(cfg, pretrained_path=str(folder),
                                         preprocessor_overrides=overrides[0],
                                         postprocessor_overrides=overrides[1])
    return policy, pre, post


def _kind(feature):
    kind = feature.type
    return str(getattr(kind, 'value', kind))


@register_backbone('lerobot')
class LeRobotBackbone(Backbone):
    def __init__(self, config, base_dir=None):
        super().__init__(config)
        folder = local_model_dir(config, base_dir)
        self.policy_type = read_checkpoint(folder)['type']
        self.policy, self.pre, self.post = load_policy(folder, config.device,
                                                       config.local_files_only)
        pc = self.policy.config
        inputs = dict(pc.input_features)
        cameras = [k for k, f in inputs.items() if _kind(f) == 'VISUAL']
        o = config.options
        self.camera_key = o.get('camera_key') or (cameras[0] if cameras else '')
        if self.camera_key not in cameras:
            raise ValueError(f'camera_key {self.camera_key!r} is not a camera of the checkpoint; '
                             f'its cameras: {cameras}')
        self.other_cameras = [k for k in cameras if k != self.camera_key]
        self.other_mode = o.get('other_cameras') or 'error'
        units = o.get('joint_units') or 'rad'
        if units not in ('rad', 'deg'):
            raise ValueError(f"options.joint_units must be 'rad' or 'deg', got {units!r}")
        self.to_policy = 180.0 / np.pi if units == 'deg' else 1.0   # robot radians -> policy
        if self.other_mode not in OTHER_CAMERAS:
            raise ValueError(f'options.other_cameras must be one of {list(OTHER_CAMERAS)}, got '
                             f'{self.other_mode!r}')
        if self.other_cameras and self.other_mode == 'error':
            raise ValueError(f'the checkpoint takes {len(cameras)} cameras {cameras}; one frame '
                             f'is sent ({self.camera_key}): set options.other_cameras to copy, '
                             f'zeros or omit')
        unknown = sorted(k for k in inputs if k not in cameras and k != STATE_KEY)
        if unknown:
            raise ValueError(f'the checkpoint takes inputs the robot does not send: {unknown}')
        self.camera_hw = tuple(inputs[self.camera_key].shape[-2:])
        self.state_dim = int(inputs[STATE_KEY].shape[0]) if STATE_KEY in inputs else None
        self.tapped, self.pool = FEATURES[self.policy_type](self.policy)
        self._tap(self.tapped)
        self.takes_noise = ('noise' in inspect.signature(self.policy.predict_action_chunk)
                            .parameters if hasattr(self.policy, 'predict_action_chunk')
                            else False) and hasattr(pc, 'max_action_dim')
        self.generator = torch.Generator().manual_seed(int(config.seed))
        self.captured = None
        size = config.image_size             # warm-up: measures the widths Info reports
        state = np.zeros(self.state_dim or config.action_dim, np.float32)
        features, chunk = self._run([(np.full((size, size, 3), 128, np.uint8), state, '', None)])
        self.feature_dim = int(features.shape[1])
        chunk_size, action_dim = chunk.shape[1:]
        if (action_dim, chunk_size) != (config.action_dim, config.chunk_size):
            print(f'lerobot backend: the checkpoint predicts {chunk_size} x {action_dim} '
                  f'actions, the parameter file says chunk_size {config.chunk_size}, action_dim '
                  f'{config.action_dim} (the robot side refuses a mismatch)', file=sys.stderr,
                  flush=True)
        self.config = dataclasses.replace(
            config, adapter='lerobot', action_dim=int(action_dim), chunk_size=int(chunk_size),
            steps_per_chunk=min(config.steps_per_chunk, int(chunk_size)))

    def _tap(self, module):
        """Wrap ``module.forward`` (instance attribute; ``close`` removes it): the first output
        of a pass that gives features is pooled into ``self.captured``."""
        inner = module.forward

        def forward(*args, **kwargs):
            out = inner(*args, **kwargs)
            if self.captured is None:
                self.captured = self.pool(args, kwargs, out)
            return out
        module.forward = forward

    def batch(self, observations):
        """[(image HxWx3 uint8, state, instruction)] -> LeRobot's raw batch (before its
        preprocessor)."""
        images, states, tasks = [], [], []
        for image, state, instruction in observations:
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f'image must be HxWx3 rgb8, got shape {image.shape}')
            state = np.asarray(state, np.float32).ravel()
            if self.state_dim is not None and len(state) != self.state_dim:
                raise ValueError(f'state has {len(state)} values, the checkpoint\'s '
                                 f'{STATE_KEY} takes {self.state_dim}')
            images.append(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
            states.append(torch.from_numpy(state * np.float32(self.to_policy)))
            tasks.append(instruction or self.config.instruction)
        frames = torch.stack(images).float() / 255.0
        if tuple(frames.shape[-2:]) != self.camera_hw:
            frames = F.interpolate(frames, size=self.camera_hw, mode='bilinear',
                                   align_corners=False).clamp(0.0, 1.0)
        batch = {self.camera_key: frames, TASK_KEY: tasks}
        for key in self.other_cameras:
            if self.other_mode == 'copy':
                batch[key] = frames.clone()
            elif self.other_mode == 'zeros':
                batch[key] = torch.zeros_like(frames)
        if self.state_dim is not None:
            batch[STATE_KEY] = torch.stack(states)
        return batch

    @torch.inference_mode()
    def _run(self, requests):
        """[(image, state, instruction, noise_seed)] -> features (B, F), chunk (B, C, A)."""
        batch = self.pre(self.batch([r[:3] for r in requests]))
        kwargs = {}
        if self.takes_noise:
            pc = self.policy.config
            noise = torch.stack([torch.randn(
                pc.chunk_size, pc.max_action_dim,
                generator=(torch.Generator().manual_seed(int(seed)) if seed is not None
                           else self.generator)) for *_, seed in requests])
            kwargs['noise'] = (noise * float(self.config.noise_scale)).to(self.device)
        self.captured = None
        try:
            if hasattr(self.policy, 'predict_action_chunk'):
                actions = self.policy.predict_action_chunk(batch, **kwargs)
            else:
                self.policy.reset()
                actions = self.policy.select_action(batch)[:, None]
            features = self.captured
        finally:
            self.captured = None
        if features is None:
            raise RuntimeError(f'the {self.policy_type} feature tap saw no forward pass')
        chunk = torch.stack([self.post(actions[:, i]) for i in range(actions.shape[1])], 1)
        return features.float().cpu(), chunk.float().cpu().numpy() / self.to_policy

    def infer_batch(self, requests):
        """One preprocess + forward pass for the whole batch (a server's many arms)."""
        features, chunks = self._run([(r.image, r.state, r.instruction, r.noise_seed)
                                      for r in requests])
        return [(features[i], chunks[i] if r.want_chunk else None)
                for i, r in enumerate(requests)]

    def infer(self, image, state, instruction='', want_chunk=True, noise_seed=None):
        features, chunks = self._run([(image, state, instruction, noise_seed)])
        return Encoding(features=features[0], cache=chunks[0]), (chunks[0] if want_chunk
                                                                 else None)

    def encode(self, image, state, instruction=''):
        return self.infer(image, state, instruction, want_chunk=False)[0]

    def act(self, encoding, noise_seed=None):
        """The chunk predicted in the pass that gave the features (already un-normalised)."""
        return encoding.cache

    def close(self):
        if 'forward' in getattr(self, 'tapped', nn.Module()).__dict__:
            del self.tapped.forward
