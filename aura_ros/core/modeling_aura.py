"""AURA-Mem: a constant-size fast-weight memory with an action-gated write.

State (the only thing carried between steps): W (d_k, d_v) and a fast bias b (d_v).
Per step, from backbone features f:

    k = norm(W_k f), v = W_v f, q = norm(W_q f)          # key, value, query
    e = v - (k W + b)                                     # what memory fails to predict
    surprise = mean(e^2)
    dW = eta_w * k^T e,  db = eta_b * e                   # delta-rule write (full strength)
    r_no = q W + b,  r_w = r_no + (eta_w (q.k) + eta_b) e # readout without / with the write
    p = gate(log surprise, log |head(r_w) - head(r_no)|, phi(f))   # action-relevant surprise
    g = 1[p > threshold]       (inference; training: p itself, or straight-through)
    W, b <- W + g dW, b + g db                            # g = 0: state untouched, no write
    action = base + head(r, phi(f))   with r = r_no + g (r_w - r_no)

The same class runs the fixed-budget controls by swapping only the write decision:
``always_write`` (g = 1), ``random_budget`` (Bernoulli(rate)), ``periodic_budget`` (every
1/rate steps, random phase) and ``skip_budget`` (Skip-RNN: a gate that sees only the state,
never the input, trained with a budget loss only).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aura_ros.core.memory import MemoryPolicy, SequenceOutput, StepOutput

LOG_EPS = 1e-6


def _as_f32(values):
    """A flat float32 numpy view (or copy) of a tensor or array."""
    if isinstance(values, torch.Tensor):
        values = values.numpy() if not values.requires_grad else values.detach().numpy()
    if values.dtype == np.float32 and values.ndim == 1 and values.flags.c_contiguous:
        return values
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1)


class FastWeightMemory(MemoryPolicy):
    def __init__(self, config):
        super().__init__(config, readout_dim=config.d_value)
        P, dk, dv = config.feature_proj_dim, config.d_key, config.d_value
        self.to_kvq = nn.Linear(config.feature_dim, 2 * dk + dv)
        # Write strengths in (0, 1) for W and for the fast bias, modulated per step by the
        # features (eta_w + eta_b ~ 1 means "overwrite what this key held").
        self.to_eta = nn.Linear(P, 2)
        nn.init.zeros_(self.to_eta.weight)
        nn.init.constant_(self.to_eta.bias, 0.0)
        with torch.no_grad():
            self.to_eta.bias.copy_(torch.tensor([1.0, -1.0]))
        if config.kind == 'aura':
            # Gate input: [log surprise, log |action change|, phi(f), normalised f].
            self.gate_in = nn.Linear(2 + P + config.feature_dim, config.gate_hidden)
            self.gate_out = nn.Linear(config.gate_hidden, 1)
            nn.init.constant_(self.gate_out.bias, 2.0)  # start writing often: no early collapse
        elif config.kind == 'skip_budget':
            # Skip-RNN control: the gate reads the state through a learned probe, never the input.
            self.skip_probe = nn.Parameter(torch.randn(dk) / math.sqrt(dk))
            self.skip_gate = nn.Linear(dv, 1)
            rate = config.write_rate
            nn.init.constant_(self.skip_gate.bias, math.log(rate / (1 - rate)) if rate < 1 else 5.0)
        self.reset_state()

    # ---- pieces of one transition, shared by streaming and sequences ----------------------
    def encode(self, features):
        """(..., F) -> per-step inputs that do not depend on the state:
        k, q (..., dk) unit norm; v (..., dv); eta (..., 2); head context (..., H);
        gate context (..., Hg) (the feature part of the gate's first layer)."""
        cfg = self.config
        x = (features - self.feature_mean) / self.feature_std
        phi = self.feature_proj(x)
        k, q, v = self.to_kvq(x).split([cfg.d_key, cfg.d_key, cfg.d_value], dim=-1)
        enc = dict(k=F.normalize(k, dim=-1), q=F.normalize(q, dim=-1), v=v,
                   eta=torch.sigmoid(self.to_eta(phi)), head_ctx=self.head_context(phi))
        if cfg.kind == 'aura':
            enc['gate_ctx'] = F.linear(torch.cat([phi, x], -1), self.gate_in.weight[:, 2:],
                                       self.gate_in.bias)
        return enc

    def propose(self, W, b, enc):
        """A candidate write of this step's (k, v) into (W, b): the prediction error and the
        readouts without and with the write. W (B, dk, dv), b (B, dv); enc: this step's inputs."""
        k, q = enc['k'], enc['q']
        kq_W = torch.bmm(torch.stack([k, q], dim=1), W) + b[:, None]  # (B, 2, dv): k W + b, q W + b
        err = enc['v'] - kq_W[:, 0]                                    # (B, dv)
        eta_w, eta_b = enc['eta'].unbind(-1)                           # (B,) each
        r_no = kq_W[:, 1]                                              # (B, dv) readout, no write
        r_w = r_no + (eta_w * (q * k).sum(-1) + eta_b)[:, None] * err  # readout after the write
        return dict(err=err, surprise=err.pow(2).mean(-1), r_no=r_no, r_w=r_w)

    def candidate_actions(self, enc, cand, base):
        """Actions without and with the candidate write: (B, A) each, one head call."""
        B = cand['r_no'].shape[0]
        both = None if base is None else torch.cat([base, base])
        a = self.head_action(torch.cat([cand['r_no'], cand['r_w']]), enc['head_ctx'].repeat(2, 1),
                             both)
        cand['a_no'], cand['a_w'] = a[:B], a[B:]
        return cand

    def gate_logit(self, enc, cand):
        """AURA: write on action-relevant surprise (and on what the features say)."""
        delta_action = (cand['a_w'] - cand['a_no']).norm(dim=-1)      # (B,)
        scalars = 0.25 * torch.log(torch.stack([cand['surprise'], delta_action], -1) + LOG_EPS)
        hidden = enc['gate_ctx'] + F.linear(scalars, self.gate_in.weight[:, :2])
        return self.gate_out(F.gelu(hidden)).squeeze(-1)              # (B,)

    def skip_delta(self, W, b):
        """Skip-RNN: increment of the write accumulator, from the state alone."""
        probe = torch.einsum('k,bkv->bv', self.skip_probe, W) + b     # (B, dv)
        return torch.sigmoid(self.skip_gate(torch.tanh(probe)).squeeze(-1))

    @staticmethod
    def apply_write(W, b, enc, cand, g):
        """W, b <- W + g eta_w k^T e, b + g eta_b e   (g: (B,) in [0, 1])."""
        e = cand['err'] * g[:, None]                                   # (B, dv)
        eta_w, eta_b = enc['eta'].unbind(-1)
        W = torch.baddbmm(W, (eta_w[:, None] * enc['k'])[:, :, None], e[:, None, :])
        return W, b + eta_b[:, None] * e

    # ---- sequences ---------------------------------------------------------------------------
    def forward_sequence(self, features, base_actions=None, gate_mode='hard', generator=None):
        """features (B, T, F), base_actions (B, T, A) or None -> SequenceOutput."""
        B, T, _ = features.shape
        cfg, dev = self.config, features.device
        enc_all = self.encode(features)                                # state-free work, batched
        W = features.new_zeros(B, cfg.d_key, cfg.d_value)
        b = features.new_zeros(B, cfg.d_value)
        schedule = self.schedule(B, T, dev, generator)                 # (B, T) or None
        u = features.new_ones(B)        # skip_budget accumulator: write at the first step
        du = features.new_zeros(B)
        outs = {k: [] for k in ('prob', 'g', 'surprise', 'r_w', 'r_no')}
        errs = []
        # unbind, not [:, t]: the backward of T slices would build T full-size gradients.
        per_step = [v.unbind(1) for v in enc_all.values()]
        bases = [None] * T if base_actions is None else base_actions.unbind(1)
        for t in range(T):
            enc = dict(zip(enc_all.keys(), (v[t] for v in per_step)))
            cand = self.propose(W, b, enc)
            if cfg.kind == 'aura':  # only the learned gate needs the actions inside the loop
                prob = torch.sigmoid(self.gate_logit(enc, self.candidate_actions(enc, cand,
                                                                                 bases[t])))
                hard = (prob > cfg.gate_threshold).float()
                g = {'hard': hard, 'soft': prob,
                     'straight_through': hard + prob - prob.detach()}[gate_mode]
            elif cfg.kind == 'skip_budget':
                hard = (u >= 0.5).float()
                g = hard if gate_mode == 'hard' else hard + u - u.detach()
                prob = u
            else:
                g = prob = schedule[:, t]
            W, b = self.apply_write(W, b, enc, cand, g)
            if cfg.kind == 'skip_budget':  # Campos et al. 2018: reset on a write, else accumulate
                wrote = g.detach() > 0.5
                du = torch.where(wrote, self.skip_delta(W, b), du)
                u = torch.where(wrote, du, u + torch.minimum(du, 1 - u))
            for key, val in (('prob', prob), ('g', g), ('surprise', cand['surprise']),
                             ('r_w', cand['r_w']), ('r_no', cand['r_no'])):
                outs[key].append(val)
            errs.append(cand['err'])
        st = {k: torch.stack(v, dim=1) for k, v in outs.items()}
        # The head runs once over the whole sequence (B, T, .), outside the time loop.
        st['a_no'] = self.head_action(st['r_no'], enc_all['head_ctx'], base_actions)
        st['a_w'] = self.head_action(st['r_w'], enc_all['head_ctx'], base_actions)
        # Action taken: the written or the unwritten one (g in {0, 1}); for a soft gate, the
        # expected action of this step under a Bernoulli(p) write.
        actions = st['a_no'] + st['g'][..., None] * (st['a_w'] - st['a_no'])
        r = st['r_no'] + st['g'][..., None] * (st['r_w'] - st['r_no'])     # (B, T, dv) used

        def future_actions(steps):
            """Actions at every step t' with and without the write of each step t in
            ``steps`` (K indices), to first order (interactions between writes ignored):
            r_t'(+/- write t) = r_t' +/- (eta_w,t (q_t' . k_t) + eta_b,t) e_t.
            Returns (with, without), each (B, K, T', A); used for the write objective."""
            eta_w, eta_b = enc_all['eta'].detach()[:, steps].unbind(-1)    # (B, K)
            qk = torch.einsum('bsk,btk->bts', enc_all['q'],
                              enc_all['k'][:, steps]).detach()             # (B, K, T')
            coef = eta_w[..., None] * qk + eta_b[..., None]                # (B, K, T')
            err = torch.stack(errs, 1).detach()[:, steps]                  # (B, K, dv)
            delta = coef[..., None] * err[:, :, None, :]                   # (B, K, T', dv)
            g = st['g'].detach()[:, steps, None, None]
            K = len(steps)
            r_with = r.detach()[:, None] + (1 - g) * delta
            r_without = r.detach()[:, None] - g * delta
            ctx = enc_all['head_ctx'].detach()[:, None].expand(-1, K, -1, -1)
            base = None if base_actions is None else base_actions[:, None].expand(-1, K, -1, -1)
            return (self.head_action(r_with, ctx, base), self.head_action(r_without, ctx, base))

        return SequenceOutput(actions=actions, write_prob=st['prob'], writes=st['g'],
                              surprise=st['surprise'], actions_write=st['a_w'],
                              actions_nowrite=st['a_no'], future_actions=future_actions)

    def schedule(self, B, T, device, generator=None):
        """Input-independent write schedules (B, T) of the control arms; None for learned gates."""
        kind, rate = self.config.kind, self.config.write_rate
        if kind == 'always_write':
            return torch.ones(B, T, device=device)
        if kind == 'random_budget':
            return (torch.rand(B, T, generator=generator, device=device) < rate).float()
        if kind == 'periodic_budget':
            period = max(1, round(1 / rate))
            phase = torch.randint(period, (B, 1), generator=generator, device=device)
            return ((torch.arange(T, device=device)[None] + phase) % period == 0).float()
        return None

    # ---- streaming (batch 1) ---------------------------------------------------------------
    fast_inference = True   # streaming steps take the compiled fast path

    def reset_state(self, generator_seed=0):
        cfg = self.config
        self._fast = None   # rebuilt from the (possibly new) weights on the next step
        self.W = torch.zeros(1, cfg.d_key, cfg.d_value)
        self.b = torch.zeros(1, cfg.d_value)
        self._u, self._du = torch.ones(1), torch.zeros(1)
        self._rng = torch.Generator().manual_seed(generator_seed)
        period = max(1, round(1 / cfg.write_rate))
        self._phase = int(torch.randint(period, (1,), generator=self._rng))
        self._t = 0

    def live_state(self):
        extra = {'u': self._u, 'du': self._du} if self.config.kind == 'skip_budget' else {}
        return {'W': self.W, 'b': self.b, **extra}

    def set_live_state(self, tensors):
        self.W, self.b = tensors['W'].clone(), tensors['b'].clone()
        if self.config.kind == 'skip_budget':
            self._u, self._du = tensors['u'].clone(), tensors['du'].clone()

    def step(self, features, base_action=None):
        """One streaming step. The compiled fast path (core/fast_step.py) runs the same math
        as ``reference_step`` below; the Skip-RNN control always takes the reference path."""
        cfg = self.config
        if cfg.kind == 'skip_budget' or not self.fast_inference:
            return self.reference_step(features, base_action)
        d = self.__dict__   # plain attributes: skip nn.Module.__getattr__/__setattr__ here
        if d['_fast'] is None:
            from aura_ros.core.fast_step import FastStep
            d['_fast'] = FastStep(self)
        if d.get('_state_src') is not d['W']:   # W, b were replaced: new views of the state
            d['_state_np'] = (d['W'].numpy()[0], d['b'].numpy()[0])
            d['_state_src'] = d['W']
        decision = -1 if cfg.kind == 'aura' else int(self._scheduled_write())
        action, wrote, prob, surprise = d['_fast'](
            *d['_state_np'], _as_f32(features), None if base_action is None
            else _as_f32(base_action), decision)
        d['_t'] += 1
        self.count(wrote, cfg.fast_weight_state_bytes())
        return StepOutput(action=torch.from_numpy(action), wrote=bool(wrote),
                          gate_probability=prob, surprise=surprise)

    def _decide(self, prob):
        """The arm's write rule (gate threshold, or its schedule) for the current step."""
        cfg = self.config
        return prob > cfg.gate_threshold if cfg.kind == 'aura' else self._scheduled_write()

    def _scheduled_write(self):
        """The write decision of the fixed-schedule arms, which never look at a gate."""
        cfg = self.config
        if cfg.kind == 'always_write':
            return True
        if cfg.kind == 'random_budget':
            return bool(torch.rand(1, generator=self._rng) < cfg.write_rate)
        return (self._t + self._phase) % max(1, round(1 / cfg.write_rate)) == 0

    @torch.inference_mode()
    def reference_step(self, features, base_action=None):
        cfg = self.config
        base = None if base_action is None else base_action.reshape(1, -1).float()
        enc = self.encode(features.reshape(1, -1).float())
        cand = self.candidate_actions(enc, self.propose(self.W, self.b, enc), base)
        if cfg.kind == 'aura':
            prob = float(torch.sigmoid(self.gate_logit(enc, cand)))
        elif cfg.kind == 'skip_budget':
            prob = float(self._u)
        else:
            prob = 1.0
        wrote = prob >= 0.5 if cfg.kind == 'skip_budget' else self._decide(prob)
        if cfg.kind in ('random_budget', 'periodic_budget'):
            prob = float(wrote)
        if wrote:  # a closed gate never touches the state
            self.W, self.b = self.apply_write(self.W, self.b, enc, cand, torch.ones(1))
        if cfg.kind == 'skip_budget':
            if wrote:
                self._du = self.skip_delta(self.W, self.b)
                self._u = self._du.clone()
            else:
                self._u = self._u + torch.minimum(self._du, 1 - self._u)
        self._t += 1
        self.count(wrote, cfg.fast_weight_state_bytes())
        action = (cand['a_w'] if wrote else cand['a_no'])[0]
        return StepOutput(action=action, wrote=bool(wrote), gate_probability=prob,
                          surprise=float(cand['surprise']))
