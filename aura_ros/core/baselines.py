"""Baselines behind the AURA interface that are not fast-weight memories.

* ``gru_dense``  a GRU that updates (writes) its state every step: O(1) state, 4*H bytes.
* ``kv_cache``   attention over every past (k, v): 256 B per step at d_k = d_v = 32, grows
                 without bound; a recency bias lets it find "the most recent" item.
* ``no_memory``  the head on the current features only (and the base action in residual mode).
"""
import torch
import torch.nn.functional as F
from torch import nn

from aura_ros.core.memory import MemoryPolicy, SequenceOutput, StepOutput, to_numpy


def _no_gate(actions, writes_value):
    """SequenceOutput for arms without a gate: every step writes (1) or none does (0)."""
    B, T = actions.shape[:2]
    writes = actions.new_full((B, T), float(writes_value))
    return SequenceOutput(actions=actions, write_prob=writes, writes=writes,
                          surprise=actions.new_zeros(B, T))


class GRUMemory(MemoryPolicy):
    def __init__(self, config):
        super().__init__(config, readout_dim=config.gru_hidden)
        self.cell = nn.GRU(config.feature_proj_dim, config.gru_hidden, batch_first=True)
        self.reset_state()

    def forward_sequence(self, features, base_actions=None, gate_mode='hard', generator=None):
        phi = self.project(features)                                  # (B, T, P)
        h, _ = self.cell(phi)                                         # (B, T, H)
        return _no_gate(self.act(h, phi, base_actions), 1)

    def reset_state(self, seed=0):
        self.h = torch.zeros(1, 1, self.config.gru_hidden)

    def live_state(self):
        return {'h': self.h}

    def set_live_state(self, tensors):
        self.h = tensors['h'].clone()

    @torch.inference_mode()
    def step(self, features, base_action=None):
        phi = self.project(features.reshape(1, 1, -1).float())
        out, self.h = self.cell(phi, self.h)
        base = None if base_action is None else base_action.reshape(1, 1, -1).float()
        self.count(True, self.h.numel() * self.h.element_size())
        return StepOutput(action=self.act(out, phi, base)[0, 0], wrote=True,
                          gate_probability=1.0, surprise=0.0)


class KVCacheMemory(MemoryPolicy):
    def __init__(self, config):
        super().__init__(config, readout_dim=config.d_value)
        self.to_kvq = nn.Linear(config.feature_dim, 2 * config.d_key + config.d_value)
        self.log_scale = nn.Parameter(torch.tensor(2.0))      # attention sharpness ~ e^2
        self.recency = nn.Parameter(torch.tensor(-2.0))       # softplus -> penalty per step of age
        self.reset_state()

    def encode(self, features):
        cfg = self.config
        x = (features - self.feature_mean) / self.feature_std
        k, q, v = self.to_kvq(x).split([cfg.d_key, cfg.d_key, cfg.d_value], dim=-1)
        return self.feature_proj(x), F.normalize(k, dim=-1), v, F.normalize(q, dim=-1)

    def forward_sequence(self, features, base_actions=None, gate_mode='hard', generator=None):
        phi, k, v, q = self.encode(features)                         # (B, T, .)
        T = features.shape[1]
        pos = torch.arange(T, device=features.device)
        age = (pos[:, None] - pos[None, :]).float()                  # (T, T) query t, key i
        scores = self.log_scale.exp() * q @ k.transpose(1, 2) - F.softplus(self.recency) * age
        scores = scores.masked_fill(age < 0, float('-inf'))          # causal: keys i <= t
        readout = torch.softmax(scores, dim=-1) @ v                  # (B, T, dv)
        return _no_gate(self.act(readout, phi, base_actions), 1)

    def compiled_segments(self):
        """MemoryPolicy.compiled_segments with the key, query and value rows first and the
        attention's sharpness and recency penalty."""
        seg = super().compiled_segments()
        seg['x_rows'].insert(0, self.folded(self.to_kvq.weight, self.to_kvq.bias))
        seg.update(attn_scale=to_numpy(self.log_scale.detach().exp()[None]),
                   attn_recency=to_numpy(F.softplus(self.recency.detach())[None]))
        return seg

    # ---- streaming: keys and values in preallocated buffers that double when full ---------
    fast_inference = True   # streaming steps take the compiled path (core/fast_step.FastKV)

    def reset_state(self, seed=0):
        cfg = self.config
        self._keys = torch.empty(0, cfg.d_key)
        self._values = torch.empty(0, cfg.d_value)
        self._capacity = 0
        self._n = 0
        self._fast = None   # rebuilt from the (possibly new) weights on the next step

    def live_state(self):
        return {'keys': self._keys[:self._n], 'values': self._values[:self._n]}

    def set_live_state(self, tensors):
        self.reset_state()
        for k, v in zip(tensors['keys'], tensors['values']):
            self._append(k, v)

    def _reserve(self):
        """Room for one more step (amortised growth: double the buffers)."""
        if self._n < self._capacity:
            return
        self._capacity = max(64, 2 * self._capacity)
        keys = torch.empty(self._capacity, self.config.d_key)
        values = torch.empty(self._capacity, self.config.d_value)
        keys[:self._n], values[:self._n] = self._keys[:self._n], self._values[:self._n]
        self._keys, self._values = keys, values
        self._kv_np = (keys.numpy(), values.numpy())   # the compiled path writes in place

    def _append(self, k, v):
        self._reserve()
        self._keys[self._n], self._values[self._n] = k, v
        self._n += 1

    @torch.inference_mode()
    def attend(self, q):
        """The memory read: attention of q (dk,) over every cached step, recency-biased."""
        keys, values = self._keys[:self._n], self._values[:self._n]
        age = torch.arange(self._n - 1, -1, -1, dtype=torch.float32)
        scores = self.log_scale.exp() * (keys @ q) - F.softplus(self.recency) * age
        return torch.softmax(scores, dim=0) @ values

    def step(self, features, base_action=None):
        if not self.fast_inference:
            return self.reference_step(features, base_action)
        from aura_ros.core.fast_step import FastKV
        from aura_ros.core.modeling_aura import _as_f32
        if self._fast is None:
            self._fast = FastKV(self)
        self._reserve()
        action = self._fast(*self._kv_np, self._n, _as_f32(features),
                            None if base_action is None else _as_f32(base_action))
        self._n += 1
        self.count(True, (self.config.d_key + self.config.d_value) * 4)
        return StepOutput(action=torch.from_numpy(action), wrote=True, gate_probability=1.0,
                          surprise=0.0)

    @torch.inference_mode()
    def reference_step(self, features, base_action=None):
        phi, k, v, q = self.encode(features.reshape(1, -1).float())
        self._append(k[0], v[0])
        readout = self.attend(q[0])
        base = None if base_action is None else base_action.reshape(1, -1).float()
        self.count(True, (self.config.d_key + self.config.d_value) * 4)
        return StepOutput(action=self.act(readout[None], phi, base)[0], wrote=True,
                          gate_probability=1.0, surprise=0.0)


class NoMemory(MemoryPolicy):
    def __init__(self, config):
        super().__init__(config, readout_dim=0)

    def forward_sequence(self, features, base_actions=None, gate_mode='hard', generator=None):
        return _no_gate(self.act(None, self.project(features), base_actions), 0)

    def reset_state(self, seed=0):
        pass

    def live_state(self):
        return {}

    def set_live_state(self, tensors):
        pass

    @torch.inference_mode()
    def step(self, features, base_action=None):
        phi = self.project(features.reshape(1, -1).float())
        base = None if base_action is None else base_action.reshape(1, -1).float()
        self.count(False, 0)
        return StepOutput(action=self.act(None, phi, base)[0], wrote=False,
                          gate_probability=0.0, surprise=0.0)
