"""The backbone interface, its config block, the registry, and safe model-path handling.

A backbone is a frozen policy seen through two calls:
    encode(image, state, instruction) -> Encoding   # features for the memory (+ a cache)
    act(encoding) -> (chunk, action_dim) np.ndarray  # un-normalised action chunk
Adapters register by name and are built from the ``backbone:`` block of a parameter file.
"""
import importlib
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from aura_ros.paths import resolve_path

DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}
# adapter name -> module that registers it (imported on first use)
ADAPTER_MODULES = {
    'hf_pi0': 'aura_ros.backbones.hf_pi0',
    'vision_features': 'aura_ros.backbones.vision_features',
    'remote': 'aura_ros.backbones.remote',
    'openvla_oft': 'aura_ros.backbones.remote',
    'lerobot': 'aura_ros.backbones.lerobot_backend',   # server side, in a LeRobot env
}
_REGISTRY = {}



# Longest task instruction any part of the package accepts (characters): the policy node's
# instruction topic, the backbone server and its client refuse longer ones before any model
# sees them (a 1 MB instruction made one backbone try to allocate a terabyte).
MAX_INSTRUCTION_CHARS = 2000

@dataclass
class BackboneConfig:
    adapter: str                          # registered adapter name: hf_pi0, vision_features, ...
    model_path: str = ''                  # folder, package://aura_ros/..., or a hub id
    local_files_only: bool = True         # never download (there is no hub at run time)
    trust_remote_code: bool = False       # only a parameter file may turn this on
    dtype: str = 'float32'                # float32 | float16 | bfloat16 (float32 on CPU)
    device: str = 'cpu'
    image_size: int = 224                 # square input side in pixels
    action_dim: int = 7
    chunk_size: int = 8                   # actions per predicted chunk
    steps_per_chunk: int = 4              # actions executed before predicting a new chunk
    action_mean: list = field(default_factory=list)  # un-normalisation (empty: identity)
    action_std: list = field(default_factory=list)
    state_mean: list = field(default_factory=list)   # proprioception normalisation
    state_std: list = field(default_factory=list)
    feature_source: str = 'prefix_mean'   # which hidden states become the memory's features
    num_inference_steps: int = 4          # flow-matching steps (hf_pi0)
    instruction: str = ''                 # default task instruction
    seed: int = 0                         # noise seed for sampled action chunks
    noise_scale: float = 1.0              # flow-matching start noise x scale (0: deterministic)
    delay_ms: float = 0.0                 # added to every encode(): emulates a slower VLA
    options: dict = field(default_factory=dict)  # adapter-specific extras

    def __post_init__(self):
        known = sorted(set(ADAPTER_MODULES) | set(_REGISTRY))
        if self.adapter not in known:
            raise ValueError(f'backbone.adapter {self.adapter!r} is not known; known: {known}')
        if self.dtype not in DTYPES:
            raise ValueError(f'backbone.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}')
        if not (self.device == 'cpu' or self.device.startswith('cuda')):
            raise ValueError(f"backbone.device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        for name, lo, hi in (('image_size', 8, 4096), ('action_dim', 1, 64),
                             ('chunk_size', 1, 1024), ('num_inference_steps', 1, 1000)):
            value = getattr(self, name)
            if not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f'backbone.{name} must be an integer in [{lo}, {hi}], '
                                 f'got {value!r}')
        if (isinstance(self.noise_scale, bool) or not isinstance(self.noise_scale, (int, float))
                or not 0 <= self.noise_scale <= 10):
            raise ValueError(f'backbone.noise_scale must be in [0, 10], got '
                             f'{self.noise_scale!r}')
        if not (isinstance(self.delay_ms, (int, float)) and 0 <= self.delay_ms <= 60000):
            raise ValueError(f'backbone.delay_ms must be in [0, 60000], got {self.delay_ms!r}')
        if not 1 <= self.steps_per_chunk <= self.chunk_size:
            raise ValueError(f'backbone.steps_per_chunk must be in [1, chunk_size='
                             f'{self.chunk_size}], got {self.steps_per_chunk}')
        for stats, dim in (('action', self.action_dim), ('state', None)):
            mean, std = getattr(self, f'{stats}_mean'), getattr(self, f'{stats}_std')
            if len(mean) != len(std):
                raise ValueError(f'backbone.{stats}_mean and {stats}_std differ in length')
            if dim is not None and mean and len(mean) != dim:
                raise ValueError(f'backbone.{stats}_mean has {len(mean)} entries, '
                                 f'action_dim is {dim}')
            if any((not np.isfinite(s)) or s <= 0 for s in std):
                raise ValueError(f'backbone.{stats}_std must be finite and > 0')
            if any(not np.isfinite(m) for m in mean):
                raise ValueError(f'backbone.{stats}_mean must be finite')

    @classmethod
    def from_dict(cls, block):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ValueError(f'unknown backbone parameters: {unknown}; known: {sorted(known)}')
        return cls(**block)

    def to_dict(self):
        return asdict(self)


class BackboneUnavailable(ConnectionError):
    """The backbone could not answer in time (server down or restarting, deadline missed). The
    policy node holds the arm, reports ERROR and keeps trying; the memory has not stepped."""


@dataclass
class InferRequest:
    """One observation for ``infer_batch``."""
    image: np.ndarray
    state: np.ndarray
    instruction: str = ''
    want_chunk: bool = True
    noise_seed: int | None = None


@dataclass
class Encoding:
    features: torch.Tensor   # (F,) float32 features for the memory
    cache: Any = None        # whatever act() needs to reuse (e.g. the prefix KV cache)


class Backbone:
    """Base class: normalisation helpers; subclasses implement encode/act."""

    feature_dim: int
    state_dim: int | None = None   # proprioception width when it is not action_dim

    def __init__(self, config: BackboneConfig):
        self.config = config
        self.dtype = DTYPES[config.dtype]
        self.device = torch.device(config.device)

    def normalise_state(self, state):
        state = np.asarray(state, np.float32)
        c = self.config
        if c.state_mean:
            if len(state) != len(c.state_mean):
                raise ValueError(f'state has {len(state)} entries, backbone.state_mean has '
                                 f'{len(c.state_mean)}')
            state = (state - np.asarray(c.state_mean, np.float32)) / np.asarray(c.state_std,
                                                                                np.float32)
        return state

    def unnormalise_actions(self, actions):
        """(chunk, >= action_dim) normalised -> (chunk, action_dim) in robot units."""
        c = self.config
        actions = np.asarray(actions, np.float32)[:, :c.action_dim]
        if c.action_mean:
            actions = actions * np.asarray(c.action_std, np.float32) + np.asarray(
                c.action_mean, np.float32)
        return actions

    def encode(self, image: np.ndarray, state: np.ndarray, instruction: str) -> Encoding:
        raise NotImplementedError

    def act(self, encoding: Encoding, noise_seed=None) -> np.ndarray:
        """The action chunk for an encoding. ``noise_seed`` (int) seeds a sampled chunk's noise
        (flow-matching heads), so one seed gives the same chunk in every run; None draws from
        the backbone's own generator. Deterministic adapters ignore it."""
        raise NotImplementedError

    def infer(self, image, state, instruction='', want_chunk=True, noise_seed=None):
        """One observation -> (Encoding, chunk or None): ``encode``, then ``act`` when a chunk
        is wanted. What the policy runner calls; a remote backbone answers both in one round
        trip."""
        encoding = self.encode(image, state, instruction)
        return encoding, (self.act(encoding, noise_seed) if want_chunk else None)

    def infer_batch(self, requests):
        """[InferRequest] -> [(features (F,), chunk or None)]. One by one here; adapters that
        can run a batch in one pass (hf_pi0) override it (a backbone server batches the
        requests of many arms)."""
        out = []
        for r in requests:
            encoding, chunk = self.infer(r.image, r.state, r.instruction, r.want_chunk,
                                         r.noise_seed)
            out.append((encoding.features, chunk))
        return out

    def close(self):
        """Free the model (lifecycle cleanup)."""


class DelayedBackbone(Backbone):
    """A backbone whose every observation takes ``delay_ms`` longer (``backbone.delay_ms``):
    slow VLAs emulated with a fast one, for latency experiments. Same outputs. The delay is
    paid in ``encode`` (the VLM pass a real VLA runs on every observation it sees, and which
    the memory reads features from), so one processed observation costs it once, whether a
    chunk is predicted then or not."""

    def __init__(self, inner: Backbone, delay_ms):
        self.inner, self.delay_s = inner, float(delay_ms) / 1e3
        self.config, self.dtype, self.device = inner.config, inner.dtype, inner.device
        self.feature_dim, self.state_dim = inner.feature_dim, inner.state_dim

    def encode(self, image, state, instruction=''):
        encoding = self.inner.encode(image, state, instruction)
        time.sleep(self.delay_s)
        return encoding

    def act(self, encoding, noise_seed=None):
        return self.inner.act(encoding, noise_seed)

    def infer(self, image, state, instruction='', want_chunk=True, noise_seed=None):
        result = self.inner.infer(image, state, instruction, want_chunk, noise_seed)
        time.sleep(self.delay_s)
        return result

    def close(self):
        self.inner.close()


def register_backbone(name):
    def wrap(cls):
        _REGISTRY[name] = cls
        cls.adapter_name = name
        return cls
    return wrap


def registered_backbones():
    return sorted(_REGISTRY)


def build_backbone(config, base_dir=None) -> Backbone:
    """Build the adapter a ``backbone:`` block names (dict or BackboneConfig)."""
    if isinstance(config, dict):
        config = BackboneConfig.from_dict(config)
    if config.adapter in ADAPTER_MODULES:
        importlib.import_module(ADAPTER_MODULES[config.adapter])
    if config.adapter not in _REGISTRY:
        raise ValueError(f'backbone adapter {config.adapter!r} not registered; known: '
                         f'{registered_backbones()}')
    backbone = _REGISTRY[config.adapter](config, base_dir=base_dir)
    return DelayedBackbone(backbone, config.delay_ms) if config.delay_ms > 0 else backbone


def local_model_dir(config: BackboneConfig, base_dir=None):
    """The model folder of a backbone block. A hub id is only accepted when it is already a
    local folder: nothing downloads at run time."""
    try:
        folder = resolve_path(config.model_path, base_dir)
    except FileNotFoundError:
        if config.local_files_only:
            raise FileNotFoundError(
                f'backbone.model_path {config.model_path!r} is not a local folder and '
                f'local_files_only is true: nothing is downloaded at run time') from None
        raise
    if not folder.is_dir():
        raise NotADirectoryError(f'backbone.model_path must be a folder, got {folder}')
    pickles = [p.name for p in folder.glob('*') if p.suffix in ('.bin', '.pt', '.pth', '.pkl',
                                                                  '.ckpt')]
    if pickles and not list(folder.glob('*.safetensors')):
        raise ValueError(f'{folder} holds only pickle weights ({pickles[:3]}); aura_ros loads '
                         f'safetensors only')
    return folder


