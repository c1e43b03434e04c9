"""AURA-Mem: a constant-size fast-weight memory with an action-gated write.

State (the only thing carried between steps): W (d_k, d_v) and a fast bias b (d_v).
Per step, from backbone features f (``transition``, the one step function):

    k = norm(W_k f), q_i = norm(W_qi f)                   # key, read_heads read queries
    v = W_v f + MLP([q_v W + b, phi(f)])                  # value; the MLP (value_hidden > 0)
                                                          # conditions it on what W holds
    e = v - (k W + b)                                     # what memory fails to predict
    surprise = mean(e^2)
    dW = eta_w * k^T e,  db = eta_b * e                   # delta-rule write (full strength)
    r_no = [q_i W + b]_i                                  # readouts without the write, and
    r_w = r_no + [(eta_w (q_i.k) + eta_b) e]_i            # with it (read_heads x d_v)
    p, g = rule.decide(...)                               # write_rules.py: the learned gate
                                                          # on action-relevant surprise, or a
                                                          # schedule; g = 1[p > threshold]
    W, b <- W + g dW, b + g db                            # g = 0: state untouched, no write
    action = base + head(r, phi(f))   with r = r_no + g (r_w - r_no)

Why the read heads and the conditioned value (both parameters, not state: the state stays
W and b, 4,224 B at d_k = d_v = 32): with one query and v = W_v f, a fast-weight memory
written every step reached 0.60-0.73 on the easy context task where a dense GRU reaches 0.999
(bench/notes.md); three read queries let the head see separate slots, and a value that
knows what the memory holds can make a write that changes nothing (a repeat) a small error.

Which rule decides is the only difference between ``aura``, its ablations
(``aura_surprise_only``, ``feature_gate``) and the controls (``always_write``,
``random_budget``, ``periodic_budget``, ``skip_budget``). Training (``forward_sequence``,
batched) and the robot (``reference_step``, batch 1) both call ``transition``; the compiled
streaming step (core/fast_step.py) is built from the same parameters and tested equal to it.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aura_ros.core.memory import (
    MemoryPolicy,
    SequenceOutput,
    StepOutput,
    episode_generator,
    to_numpy,
)
from aura_ros.core.write_rules import RESTING, SkipRNN, build_write_rule


def _as_f32(values):
    """A flat float32 numpy view (or copy) of a tensor or array."""
    if isinstance(values, torch.Tensor):
        values = values.numpy() if not values.requires_grad else values.detach().numpy()
    if values.dtype == np.float32 and values.ndim == 1 and values.flags.c_contiguous:
        return values
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1)


class FastWeightMemory(MemoryPolicy):
    def __init__(self, config):
        super().__init__(config, readout_dim=config.read_heads * config.d_value)
        P, dk, dv = config.feature_proj_dim, config.d_key, config.d_value
        self.n_reads = config.read_heads + (1 if config.value_hidden else 0)
        self.to_kvq = nn.Linear(config.feature_dim, (1 + self.n_reads) * dk + dv)
        if config.nonlinear_keys:
            self.phi_to_kvq = nn.Linear(P, (1 + self.n_reads) * dk + dv, bias=False)
        if config.value_hidden:   # the value, conditioned on what the memory holds
            self.value_in = nn.Linear(dv + P, config.value_hidden)
            self.value_out = nn.Linear(config.value_hidden, dv)
            nn.init.zeros_(self.value_out.weight)   # start as the plain delta rule
            nn.init.zeros_(self.value_out.bias)
        # Write strengths in (0, 1) for W and for the fast bias, modulated per step by the
        # features (eta_w + eta_b ~ 1 means "overwrite what this key held").
        self.to_eta = nn.Linear(P, 2)
        nn.init.zeros_(self.to_eta.weight)
        with torch.no_grad():
            self.to_eta.bias.copy_(torch.tensor([1.0, -1.0]))
        self.rule = build_write_rule(config)
        self.reset_state()

    # ---- pieces of one transition ----------------------------------------------------------
    def encode(self, features):
        """(..., F) -> per-step inputs that do not depend on the state:
        k (..., dk) and q (..., n, dk) unit norm (n = read_heads); v (..., dv); eta (..., 2);
        head context (..., H); gate context (..., Hg) (the gate's first layer on the features,
        if it sees them)."""
        cfg = self.config
        x = (features - self.feature_mean) / self.feature_std
        phi = self.feature_proj(x)
        kqv = self.to_kvq(x)
        if cfg.nonlinear_keys:
            kqv = kqv + self.phi_to_kvq(phi)
        k, q, v = kqv.split([cfg.d_key, self.n_reads * cfg.d_key, cfg.d_value], dim=-1)
        q = q.unflatten(-1, (self.n_reads, cfg.d_key))
        enc = dict(k=F.normalize(k, dim=-1), q=F.normalize(q, dim=-1), v=v, phi=phi,
                   eta=torch.sigmoid(self.to_eta(phi)), head_ctx=self.head_context(phi))
        if getattr(self.rule, 'sees_features', False):
            enc['gate_ctx'] = self.rule.feature_context(phi, x)
        return enc

    def propose(self, W, b, enc):
        """A candidate write of this step's (k, v) into (W, b): the prediction error and the
        readouts without and with the write, (B, n * dv) each. W (B, dk, dv), b (B, dv); enc:
        this step's inputs."""
        n = self.config.read_heads
        k, q = enc['k'], enc['q']                                      # (B, dk), (B, n (+1), dk)
        kq_W = torch.bmm(torch.cat([k[:, None], q], 1), W) + b[:, None]  # (B, 1 + n (+1), dv)
        v = enc['v']
        if self.config.value_hidden:   # + MLP(value query's readout, phi)
            v = v + self.value_out(F.gelu(self.value_in(torch.cat([kq_W[:, -1], enc['phi']],
                                                                  -1))))
            q = q[:, :n]
        err = v - kq_W[:, 0]                                           # (B, dv)
        eta_w, eta_b = enc['eta'].unbind(-1)                           # (B,) each
        r_no = kq_W[:, 1:1 + n]                                        # (B, n, dv) no write
        coef = eta_w[:, None] * (q @ k[:, :, None]).squeeze(-1) + eta_b[:, None]  # (B, n)
        r_w = r_no + coef[..., None] * err[:, None]                    # readouts after the write
        return dict(err=err, surprise=err.pow(2).mean(-1), r_no=r_no.flatten(1),
                    r_w=r_w.flatten(1))

    def candidate_actions(self, enc, cand, base):
        """Head outputs and actions without and with the candidate write, one head call:
        raw_no, raw_w (B, A) in the head's units; a_no, a_w (B, A) actions."""
        B = cand['r_no'].shape[0]
        raw = self.head_raw(torch.cat([cand['r_no'], cand['r_w']]), enc['head_ctx'].repeat(2, 1))
        cand['raw_no'], cand['raw_w'] = raw[:B], raw[B:]
        cand['a_no'], cand['a_w'] = self.compose(raw[:B], base), self.compose(raw[B:], base)
        return cand

    @staticmethod
    def apply_write(W, b, enc, cand, g):
        """W, b <- W + g eta_w k^T e, b + g eta_b e   (g: (B,) in [0, 1])."""
        e = cand['err'] * g[:, None]                                   # (B, dv)
        eta_w, eta_b = enc['eta'].unbind(-1)
        W = torch.baddbmm(W, (eta_w[:, None] * enc['k'])[:, :, None], e[:, None, :])
        return W, b + eta_b[:, None] * e

    def transition(self, W, b, rs, enc, base, threshold, gate_mode='hard', forced=None):
        """THE step, for a batch: state (W, b, rule state rs) and this step's inputs -> new
        state, gate probability p (B,), gate value g (B,) and the candidate (err, surprise,
        readouts; actions when the rule read them). With a hard gate, g = 0 leaves W and b
        bit for bit as they were. ``forced`` (B,) in {0, 1}: the writes, whatever the rule
        would decide (as ``force_writes`` in streaming)."""
        cand = self.propose(W, b, enc)
        if forced is not None:
            prob = g = forced
        else:
            if self.rule.reads_actions and gate_mode not in RESTING:
                self.candidate_actions(enc, cand, base)
            prob, g = self.rule.decide(self, W, b, enc, cand, rs, threshold, gate_mode)
        W_new, b_new = self.apply_write(W, b, enc, cand, g)
        if gate_mode == 'hard' and not torch.is_grad_enabled():   # a closed gate never
            # touches the state (bit for bit; in training W + 0 = W is exact anyway)
            wrote = g > 0
            W_new = torch.where(wrote[:, None, None], W_new, W)
            b_new = torch.where(wrote[:, None], b_new, b)
        rs = self.rule.advance(self, W_new, b_new, g, rs)
        return W_new, b_new, rs, prob, g, cand

    # ---- sequences ---------------------------------------------------------------------------
    def forward_sequence(self, features, base_actions=None, gate_mode='hard', generator=None,
                         state=None, forced_writes=None):
        """features (B, T, F), base_actions (B, T, A) or None -> SequenceOutput. ``state``:
        the (W, b) to start from (default: empty). ``forced_writes`` (B, T) in {0, 1}: write
        exactly there (an arm trained with a fixed schedule, e.g. the cue onsets)."""
        B, T, _ = features.shape
        cfg = self.config
        enc_all = self.encode(features)                                # state-free work, batched
        if state is None:
            W = features.new_zeros(B, cfg.d_key, cfg.d_value)
            b = features.new_zeros(B, cfg.d_value)
        else:
            W, b = state
        rs = self.rule.start(B, generator)
        keys = ('prob', 'g', 'surprise', 'r_w', 'r_no', 'err', 'raw_no', 'raw_w')
        outs = {k: [] for k in keys}
        # unbind, not [:, t]: the backward of T slices would build T full-size gradients.
        per_step = [v.unbind(1) for v in enc_all.values()]
        bases = [None] * T if base_actions is None else base_actions.unbind(1)
        forced = ([None] * T if forced_writes is None
                  else forced_writes.to(features.dtype).unbind(1))
        for t in range(T):
            enc = dict(zip(enc_all.keys(), (v[t] for v in per_step)))
            W, b, rs, prob, g, cand = self.transition(W, b, rs, enc, bases[t],
                                                      cfg.gate_threshold, gate_mode, forced[t])
            cand.update(prob=prob, g=g)
            for key in keys:
                if key in cand:
                    outs[key].append(cand[key])
        st = {k: torch.stack(v, dim=1) for k, v in outs.items() if v}
        r = st['r_no'] + st['g'][..., None] * (st['r_w'] - st['r_no'])     # (B, T, n dv) used
        # Actions with and without each step's write (what the write objective compares):
        # reused from the loop when the gate computed them, else one head pass over the
        # sequence (B, T, .) outside the time loop; arms that need neither act on r alone.
        if 'raw_no' in st:
            a_no = self.compose(st['raw_no'], base_actions)
            a_w = self.compose(st['raw_w'], base_actions)
        elif cfg.is_gated and gate_mode not in RESTING:
            a_no = self.head_action(st['r_no'], enc_all['head_ctx'], base_actions)
            a_w = self.head_action(st['r_w'], enc_all['head_ctx'], base_actions)
        else:
            a_no = a_w = None
        # Action taken: the written or the unwritten one (g in {0, 1}); for a soft gate, the
        # expected action of this step under a Bernoulli(p) write.
        actions = (self.head_action(r, enc_all['head_ctx'], base_actions) if a_no is None
                   else a_no + st['g'][..., None] * (a_w - a_no))

        def future_actions(steps):
            """Actions at every step t' with and without the write of each step t in
            ``steps`` (K indices), to first order (interactions between writes ignored): from
            t on, r_t'(+/- write t) = r_t' +/- (eta_w,t (q_t' . k_t) + eta_b,t) e_t; before t a
            write changes nothing (the actions taken). Returns (with, without), each
            (B, K, T', A); used for the write objective. The head's first layer is linear in
            r: the change a write makes to it is sum_n coef_n (W_in,n e_t), formed without the
            readouts; with a binary gate one of the two actions is the one taken, so only the
            other (the counterfactual) goes through the rest of the head."""
            with torch.no_grad():
                w_r = self.head_in.weight[:, :self.readout_dim].view(
                    -1, cfg.read_heads, cfg.d_value)                           # (H, n, dv)
                u = torch.einsum('hnd,bkd->bknh', w_r, st['err'][:, steps])    # (B, K, n, H)
                eta_w, eta_b = enc_all['eta'][:, steps].unbind(-1)             # (B, K)
                pre = self.head_pre(r, enc_all['head_ctx'])                    # (B, T', H)
                taken = self.compose(self.head_from_pre(pre), base_actions)    # (B, T', A)
                g = st['g'][:, steps]                                          # (B, K)
                hard = g.round()
                binary = torch.allclose(g, hard, rtol=0.0, atol=1e-5)
                # with a binary gate one pass: the write not made (+1) or unmade (-1)
                scales = (1 - 2 * hard,) if binary else (1 - g, -g)
                outs = [taken[:, None].repeat(1, len(steps), 1, 1) for _ in scales]
                for k, t in enumerate(steps.tolist()):
                    qk = torch.einsum('bsnk,bk->bsn', enc_all['q'][:, t:, :cfg.read_heads],
                                      enc_all['k'][:, t])                      # (B, T'-t, n)
                    coef = eta_w[:, k, None, None] * qk + eta_b[:, k, None, None]
                    change = torch.einsum('bsn,bnh->bsh', coef, u[:, k])       # (B, T'-t, H)
                    base = None if base_actions is None else base_actions[:, t:]
                    for out, scale in zip(outs, scales):
                        out[:, k, t:] = self.compose(
                            self.head_from_pre(pre[:, t:] + scale[:, k, None, None] * change),
                            base)
                if not binary:
                    return outs[0], outs[1]
                wrote = hard[..., None, None] > 0.5
                taken = taken[:, None]
                return (torch.where(wrote, taken, outs[0]), torch.where(wrote, outs[0], taken))

        return SequenceOutput(actions=actions, write_prob=st['prob'], writes=st['g'],
                              surprise=st['surprise'], actions_write=a_w, actions_nowrite=a_no,
                              future_actions=future_actions, final_state=(W, b))

    def compiled_segments(self):
        """The memory's parameters for the compiled step (MemoryPolicy.compiled_segments),
        its write rule's appended: z = [k, q_1..q_n (, q_v), v, phi pre-activation, gate
        rows] and pz = [head context, eta, gate rows]."""
        seg = super().compiled_segments()
        seg['x_rows'].insert(0, self.folded(self.to_kvq.weight, self.to_kvq.bias))
        seg['phi_rows'].append((to_numpy(self.to_eta.weight), to_numpy(self.to_eta.bias)))
        if self.config.nonlinear_keys:
            seg['kqv_phi'] = to_numpy(self.phi_to_kvq.weight)
        if self.config.value_hidden:
            seg.update(value_in_w=to_numpy(self.value_in.weight),
                       value_in_b=to_numpy(self.value_in.bias),
                       value_out_w=to_numpy(self.value_out.weight),
                       value_out_b=to_numpy(self.value_out.bias))
        for name, part in self.rule.compiled_segments(self).items():
            seg[name] = seg[name] + part if name.endswith('_rows') else part
        return seg

    # ---- streaming (batch 1) ---------------------------------------------------------------
    fast_inference = True   # streaming steps take the compiled fast path

    def reset_state(self, seed=0):
        cfg = self.config
        self._fast = None   # rebuilt from the (possibly new) weights on the next step
        self.W = torch.zeros(1, cfg.d_key, cfg.d_value)
        self.b = torch.zeros(1, cfg.d_value)
        self._rs = self.rule.start(1, episode_generator(seed))

    def live_state(self):
        extra = ({'u': self._rs['u'], 'du': self._rs['du']} if isinstance(self.rule, SkipRNN)
                 else {})
        return {'W': self.W, 'b': self.b, **extra}

    def set_live_state(self, tensors):
        self.W, self.b = tensors['W'].clone(), tensors['b'].clone()
        if isinstance(self.rule, SkipRNN):
            self._rs['u'], self._rs['du'] = tensors['u'].clone(), tensors['du'].clone()

    def step(self, features, base_action=None):
        """One streaming step at the current ``config.gate_threshold``. The compiled fast path
        (core/fast_step.py) runs the same math as ``reference_step``; the Skip-RNN control
        (its state-driven accumulator) always takes the reference path."""
        d = self.__dict__   # plain attributes: skip nn.Module.__getattr__/__setattr__ here
        rule, cfg = d['_modules']['rule'], d['config']
        if not self.fast_inference or isinstance(rule, SkipRNN):
            return self.reference_step(features, base_action)
        if d['_fast'] is None:
            from aura_ros.core.fast_step import FastStep
            d['_fast'] = FastStep(self)
        if d.get('_state_src') is not d['W']:   # W, b were replaced: new views of the state
            d['_state_np'] = (d['W'].numpy()[0], d['b'].numpy()[0])
            d['_state_src'] = d['W']
        decision = rule.scheduled(d['_rs'])
        if d.get('_write_when') is not None:     # a forced schedule (force_writes)
            decision = bool(d['_write_when']())
        action, wrote, prob, surprise = d['_fast'](
            *d['_state_np'], _as_f32(features), None if base_action is None
            else _as_f32(base_action), -1 if decision is None else int(decision),
            cfg.gate_threshold)
        rule.advance(self, None, None, None, d['_rs'])   # schedules: t += 1
        self.count(wrote, cfg.fast_weight_state_bytes())
        return StepOutput(action=torch.from_numpy(action), wrote=bool(wrote),
                          gate_probability=prob if decision is None else float(wrote),
                          surprise=surprise)

    def force_writes(self, when):
        """Streaming steps write exactly when ``when()`` returns True (asked once per step,
        before it), whatever the gate would decide; None: the memory's own rule again. An arm
        made this way differs from the trained memory only in *when* it writes (a clock, a
        pixel-change heuristic, an oracle of cue onsets)."""
        self.__dict__['_write_when'] = when

    @torch.inference_mode()
    def reference_step(self, features, base_action=None):
        """One streaming step through ``transition`` (batch 1, hard gate)."""
        if self.__dict__.get('_write_when') is not None:
            raise ValueError('forced writes run in the compiled streaming step only')
        cfg = self.config
        base = None if base_action is None else base_action.reshape(1, -1).float()
        enc = self.encode(features.reshape(1, -1).float())
        self.W, self.b, self._rs, prob, g, cand = self.transition(
            self.W, self.b, self._rs, enc, base, cfg.gate_threshold)
        if 'a_w' not in cand:
            self.candidate_actions(enc, cand, base)
        wrote = bool(g[0] > 0)
        self.count(wrote, cfg.fast_weight_state_bytes())
        action = (cand['a_w'] if wrote else cand['a_no'])[0]
        return StepOutput(action=action, wrote=wrote, gate_probability=float(prob[0]),
                          surprise=float(cand['surprise'][0]))
