"""The interface every memory arm shares, and the parts they have in common.

Two ways to drive a memory:
  * streaming (robot):  ``reset()`` then ``step(features, base_action)`` once per frame, batch 1,
    binary gate; the live state is the only thing carried between steps;
  * sequences (training, benchmarks): ``forward_sequence(features, base_actions, gate_mode)``
    over a batch of episodes, (B, T, F) -> actions (B, T, A) plus gate statistics.

Both run the same per-step transition (``FastWeightMemory.transition``), so what is trained
is what runs.

Episodes: ``reset(seed)`` starts one. Whatever an arm draws at random (a random or periodic
write schedule) comes from a generator seeded with the episode seed: the same seed gives the
same schedule, and ``reset()`` without a seed starts a fresh one (a new seed per reset).
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from aura_ros.core.configuration_aura import AuraConfig


@dataclass
class StepOutput:
    action: torch.Tensor      # (A,) action for this step (base + residual, or full)
    wrote: bool               # did the memory write this step
    gate_probability: float   # write probability before thresholding (1/0 for fixed schedules)
    surprise: float           # inner prediction error of the memory on this step, mean square


@dataclass
class SequenceOutput:
    actions: torch.Tensor          # (B, T, A) actions taken (hard gate) or expected (soft gate)
    write_prob: torch.Tensor       # (B, T) gate probability
    writes: torch.Tensor           # (B, T) gate value used: {0, 1} (hard / ST) or (0, 1) (soft)
    surprise: torch.Tensor         # (B, T)
    actions_write: torch.Tensor | None = None    # (B, T, A) action had the step written
    actions_nowrite: torch.Tensor | None = None  # (B, T, A) action had the step not written
    future_actions: object = None  # callable(): (B, T, T', A) x2, see FastWeightMemory
    final_state: tuple = ()        # the live state after the last step (fast weights: W, b)


def to_numpy(t):
    """A contiguous float32 numpy copy of a tensor or array (weights stay (out, in))."""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.ascontiguousarray(t, dtype=np.float32)


def episode_generator(seed):
    """A torch generator for one episode's random draws (seed: int or sequence of ints)."""
    entropy = seed if isinstance(seed, (list, tuple)) else [int(seed)]
    state = np.random.SeedSequence([int(s) for s in entropy]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


class MemoryPolicy(nn.Module):
    """Feature normalisation, feature projection, action head, counters, safetensors I/O."""

    def __init__(self, config: AuraConfig, readout_dim: int):
        super().__init__()
        self.config = config
        self.readout_dim = readout_dim  # width of what the memory hands the head
        F, P, A = config.feature_dim, config.feature_proj_dim, config.action_dim
        # Normalisation statistics of the backbone features, filled in by training.
        self.register_buffer('feature_mean', torch.zeros(F))
        self.register_buffer('feature_std', torch.ones(F))
        # Robot-unit size of one unit of head output (residual mode), e.g. the action std, so
        # the head works in normalised units and losses compare across joints.
        self.register_buffer('action_scale', torch.ones(A))
        self.feature_proj = nn.Sequential(nn.Linear(F, P), nn.LayerNorm(P), nn.GELU())
        # Action head: MLP on [readout, phi]. Kept as two Linears so the phi part can be computed
        # for a whole sequence at once and only the readout part runs inside the time loop.
        self.head_in = nn.Linear(readout_dim + P, config.head_hidden)
        self.head_out = nn.Linear(config.head_hidden, A)
        if config.action_mode == 'residual':  # start as the frozen policy, learn the correction
            nn.init.zeros_(self.head_out.weight)
            nn.init.zeros_(self.head_out.bias)
        self.total_steps = 0
        self.total_writes = 0
        self.bytes_written = 0

    # ---- shared pieces -------------------------------------------------------------------
    def project(self, features):
        """(..., F) raw backbone features -> (..., P) normalised projection."""
        return self.feature_proj((features - self.feature_mean) / self.feature_std)

    def head_context(self, phi):
        """(..., P) -> (..., H): the feature part of the head's first layer (+ bias)."""
        return nn.functional.linear(phi, self.head_in.weight[:, self.readout_dim:],
                                    self.head_in.bias)

    def head_pre(self, readout, context):
        """(..., H) the head's first layer: the context plus the readout (..., R) part."""
        if self.readout_dim:
            context = context + nn.functional.linear(readout,
                                                     self.head_in.weight[:, :self.readout_dim])
        return context

    def head_from_pre(self, pre):
        """The head's own output (normalised units) from its first layer (..., H)."""
        return self.head_out(nn.functional.gelu(pre))

    def head_raw(self, readout, context):
        """The head's own output (normalised units) from the readout (..., R) and the head
        context (..., H)."""
        return self.head_from_pre(self.head_pre(readout, context))

    def compose(self, raw, base_action):
        """The action from the head's output: the output itself ('full', or no base action),
        else base + residual_scale * action_scale * output."""
        if self.config.action_mode == 'full' or base_action is None:
            return raw
        return base_action + self.config.residual_scale * self.action_scale * raw

    def head_action(self, readout, context, base_action):
        """Action from the readout (..., R) and the head context (..., H)."""
        return self.compose(self.head_raw(readout, context), base_action)

    def act(self, readout, phi, base_action):
        """Action from the memory readout (..., R) and projected features (..., P)."""
        return self.head_action(readout, self.head_context(phi), base_action)

    # ---- the compiled streaming step's parameters (core/fast_step.py) ----------------------
    def folded(self, weight, bias):
        """A layer on the normalised features as one on the raw features (numpy, float32):
        W ((x - mean) / std) + b = W' x + b'."""
        w = to_numpy(weight) * (1.0 / to_numpy(self.feature_std))
        return w, to_numpy(bias) - w @ to_numpy(self.feature_mean)

    def compiled_segments(self):
        """The projection and the action head for the compiled streaming step, by the names
        it reads (fast_step.P): float32 arrays, weights (out, in). ``x_rows`` and
        ``phi_rows`` are (weight, bias) row blocks of the step's two projections, of the raw
        features and of phi, each computed in one pass; a subclass puts its own before the
        projection's (x) and after the head context (phi), the write rule after both."""
        cfg = self.config
        R, ln = self.readout_dim, self.feature_proj[1]
        head_in = to_numpy(self.head_in.weight)                                  # (H, R + P)
        scale = (cfg.residual_scale * to_numpy(self.action_scale) if cfg.action_mode == 'residual'
                 else np.ones(cfg.action_dim, np.float32))
        return dict(x_rows=[self.folded(self.feature_proj[0].weight,
                                            self.feature_proj[0].bias)],
                    phi_rows=[(head_in[:, R:], to_numpy(self.head_in.bias))],
                    ln_w=to_numpy(ln.weight), ln_b=to_numpy(ln.bias), ln_eps=np.float32([ln.eps]),
                    head_r=head_in[:, :R], head_out_w=to_numpy(self.head_out.weight),
                    head_out_b=to_numpy(self.head_out.bias), action_scale=scale)

    def set_feature_stats(self, features):
        """Normalise with the mean/std of training features (N, F)."""
        flat = features.reshape(-1, features.shape[-1]).float()
        self.feature_mean.copy_(flat.mean(0))
        self.feature_std.copy_(flat.std(0).clamp_min(1e-4))

    def set_gate_threshold(self, value):
        """Run-time change of the write threshold (write iff p > threshold); ValueError,
        nothing changed, unless 0 < value < 1."""
        value = float(value)
        if not 0.0 < value < 1.0:
            raise ValueError(f'gate_threshold must lie in (0, 1), got {value!r}')
        self.config.gate_threshold = value

    # ---- streaming -----------------------------------------------------------------------
    def reset(self, seed=None):
        """A new episode: counters to zero, empty state; ``seed`` seeds the episode's random
        draws (None: a fresh seed per reset)."""
        self.total_steps = 0
        self.total_writes = 0
        self.bytes_written = 0
        if seed is None:
            self._resets = getattr(self, '_resets', 0) + 1
            seed = [0x5EED, self._resets]
        self.reset_state(seed)

    def count(self, wrote, bytes_per_write):
        d = self.__dict__  # plain attributes: skip nn.Module.__setattr__ on the hot path
        d['total_steps'] += 1
        d['total_writes'] += int(wrote)
        d['bytes_written'] += int(wrote) * bytes_per_write

    def live_state(self):
        """The live inference state (what persists between steps), by name."""
        raise NotImplementedError

    def set_live_state(self, tensors):
        """Restore a live state (durable memory snapshots)."""
        raise NotImplementedError

    def state_tensors(self):
        return list(self.live_state().values())

    def state_bytes(self):
        return sum(t.numel() * t.element_size() for t in self.state_tensors())

    def reset_state(self, seed=0):
        raise NotImplementedError

    def step(self, features, base_action=None) -> StepOutput:
        raise NotImplementedError

    def forward_sequence(self, features, base_actions=None, gate_mode='hard',
                         generator=None) -> SequenceOutput:
        raise NotImplementedError

    # ---- checkpoints -----------------------------------------------------------------------
    def save(self, path):
        """Weights and config to one safetensors file (no pickle)."""
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(tensors, str(path), metadata={'aura_config': self.config.to_json(),
                                                'format': 'aura_ros.memory.v1'})

    @staticmethod
    def read_config(path):
        from safetensors import safe_open
        with safe_open(str(path), framework='pt') as f:
            meta = f.metadata() or {}
        if 'aura_config' not in meta:
            raise ValueError(f'{path}: not an aura_ros memory checkpoint (no aura_config metadata)')
        return AuraConfig.from_json(meta['aura_config'])

    def load_weights(self, path):
        """Load weights, refusing any missing, unexpected or mis-shaped tensor with its name."""
        tensors = load_file(str(path))
        own = self.state_dict()
        problems = [f'missing {k}' for k in own if k not in tensors]
        problems += [f'unexpected {k}' for k in tensors if k not in own]
        problems += [f'{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(v.shape)}'
                     for k, v in own.items() if k in tensors and tensors[k].shape != v.shape]
        if problems:
            raise ValueError(f'{path}: checkpoint does not match the memory config: '
                             + '; '.join(problems[:5]))
        self.load_state_dict(tensors)
        return self


def describe(config: AuraConfig):
    return json.loads(config.to_json())


def load_memory(path, **overrides):
    """Build the memory a checkpoint describes and load its weights (safetensors only)."""
    from aura_ros.core import build_memory
    path = Path(path)
    if path.suffix != '.safetensors':
        raise ValueError(f'{path}: memory checkpoints must be .safetensors files')
    if not path.is_file():
        raise FileNotFoundError(f'memory checkpoint not found: {path}')
    config = MemoryPolicy.read_config(path)
    if overrides:
        config = AuraConfig(**{**describe(config), **overrides})
    return build_memory(config).load_weights(path).eval()
