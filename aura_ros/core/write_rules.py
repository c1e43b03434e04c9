"""When a fast-weight memory writes: one small object per rule, chosen by ``config.kind``.

Every rule answers one question per step -- write or not -- from what it is allowed to see:

  ``LearnedGate(sees=...)``  a small learned gate. What it may see:
      'state'     signals computed against the current memory state: the inner prediction
                  error of W on this step's key (log surprise), the change of this step's
                  action the candidate write would cause, and the change it would cause in the
                  *anticipated* next action (the action read with a learned probe query and a
                  learned feature-free context, i.e. what the memory alone will make the policy
                  do later). None of them is a feature of the observation.
      'features'  the step's raw and projected features: what a classifier of one
                  observation sees.
    ``aura``                state + features, the features *bounded*: they move the logit by at
                            most ``gate_feature_bound``, so they can modulate the decision but
                            not make it on their own (the product's gate)
    ``aura_surprise_only``  state only (ablation: keeps AURA's gains only if surprise decides)
    ``feature_gate``        features only, unbounded (the classifier the paper argues against)
  ``AlwaysWrite``, ``RandomSchedule``, ``PeriodicSchedule``: input-blind schedules.
  ``SkipRNN``: Campos et al. 2018, a write accumulator driven by the state alone.

Interface (batched over B episodes; the streaming path runs B = 1):
    start(B, generator) -> rule state of a new episode (schedules draw their randomness from
                           ``generator``: a fresh, episode-seeded schedule every episode)
    decide(memory, W, b, enc, cand, rs, threshold, gate_mode) -> (prob, g)    g in [0, 1]
    advance(memory, W, b, g, rs) -> rule state after the step's write (W, b: written)
    scheduled(rs) -> the decision of an input-blind rule for the coming step (bool, B = 1),
                     made before the step is computed (the compiled streaming path); None for
                     rules that look at the step
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from aura_ros.core.configuration_aura import KINDS, LOG_EPS, SIGNAL_SCALE
from aura_ros.core.memory import to_numpy

STATE_SIGNALS = ('log_surprise', 'log_action_change', 'log_next_action_change')


GATE_MODES = ('hard', 'soft', 'straight_through', 'open', 'random')
RESTING = ('open', 'random')     # warm-up modes: the gate rests (not trained, not read)


def straight_through(prob, threshold, gate_mode):
    """The gate value g from the probability: 'hard' 1[p > threshold] (inference), 'soft' p,
    'straight_through' hard forward, p's gradient backward."""
    hard = (prob > threshold).float()
    if gate_mode == 'hard':
        return hard
    if gate_mode == 'soft':
        return prob
    return hard + prob - prob.detach()


class WriteRule(nn.Module):
    reads_actions = False    # needs the candidate actions (a_w, a_no) before deciding

    def start(self, B, generator=None):
        return {'t': 0}

    def decide(self, memory, W, b, enc, cand, rs, threshold, gate_mode):
        raise NotImplementedError

    def advance(self, memory, W, b, g, rs):
        rs['t'] += 1
        return rs

    def scheduled(self, rs):
        return None

    def compiled_segments(self, memory):
        """What the compiled streaming step needs of this rule (fast_step.P names; see
        MemoryPolicy.compiled_segments): nothing for a rule that decides before the step."""
        return {}


class LearnedGate(WriteRule):
    """Trained by the write objective (core/training.py)."""

    def __init__(self, config, sees):
        super().__init__()
        unknown = set(sees) - {'state', 'features'}
        if unknown or not sees:
            raise ValueError(f'a learned gate sees "state" and/or "features", got {sees}')
        self.sees_state, self.sees_features = 'state' in sees, 'features' in sees
        self.reads_actions = self.sees_state
        self.categorical = config.action_change == 'distribution'
        # Features modulate (bounded) when the state is seen too; alone they decide.
        self.feature_bound = config.gate_feature_bound if self.sees_state else 0.0
        P, Hg = config.feature_proj_dim, config.gate_hidden
        if self.sees_state:
            self.state_in = nn.Linear(len(STATE_SIGNALS), Hg)
            self.state_out = nn.Linear(Hg, 1)
            nn.init.constant_(self.state_out.bias, 2.0)   # start writing often: no collapse
            # The anticipated next action: read with a learned query, under a learned
            # feature-free context of the action head (phi-space vector).
            self.probe_query = nn.Parameter(torch.randn(config.read_heads, config.d_key)
                                            / math.sqrt(config.d_key))
            self.probe_phi = nn.Parameter(torch.zeros(P))
        if self.sees_features:
            self.feat_in = nn.Linear(P + config.feature_dim, Hg)
            self.feat_out = nn.Linear(Hg, 1)
            if self.sees_state:   # start neutral: the state signals decide
                nn.init.zeros_(self.feat_out.weight)
                nn.init.zeros_(self.feat_out.bias)
            else:
                nn.init.constant_(self.feat_out.bias, 2.0)

    @property
    def bias(self):
        """The output bias that sets how open the gate is before it sees anything."""
        return self.state_out.bias if self.sees_state else self.feat_out.bias

    def feature_context(self, phi, x):
        """(..., P), (..., F) -> (..., Hg): the gate's first layer on the features (state-free,
        computed for a whole sequence at once)."""
        return self.feat_in(torch.cat([phi, x], -1))

    def probe(self, memory, W, b, enc, cand):
        """Readouts with the probe queries, without / with the candidate write: (B, n dv)."""
        q = F.normalize(self.probe_query, dim=-1)                            # (n, dk)
        r_no = torch.einsum('nk,bkv->bnv', q, W) + b[:, None]               # (B, n, dv)
        eta_w, eta_b = enc['eta'].unbind(-1)
        coef = eta_w[:, None] * (enc['k'] @ q.T) + eta_b[:, None]           # (B, n)
        return r_no.flatten(1), (r_no + coef[..., None] * cand['err'][:, None]).flatten(1)

    def change(self, raw_w, raw_no):
        """(B,) how much a write changes an action: the norm of the change of the head output,
        or (categorical actions) the total-variation distance of the two distributions."""
        if self.categorical:
            return 0.5 * (raw_w.softmax(-1) - raw_no.softmax(-1)).abs().sum(-1)
        return (raw_w - raw_no).norm(dim=-1)

    def signals(self, memory, W, b, enc, cand):
        """(B, 3) state signals: 0.25 * log of surprise, action change now and next."""
        now = self.change(cand['raw_w'], cand['raw_no'])
        r_no, r_w = self.probe(memory, W, b, enc, cand)
        ctx = memory.head_context(self.probe_phi)
        nxt = self.change(memory.head_raw(r_w, ctx), memory.head_raw(r_no, ctx))
        return SIGNAL_SCALE * torch.log(torch.stack([cand['surprise'], now, nxt], -1) + LOG_EPS)

    def logit(self, signals=None, feature_context=None):
        """The gate's logit from what it sees (the other argument is ignored): (B,)."""
        out = 0.0
        if self.sees_state:
            out = self.state_out(F.gelu(self.state_in(signals))).squeeze(-1)
        if self.sees_features:
            f = self.feat_out(F.gelu(feature_context)).squeeze(-1)
            out = out + (self.feature_bound * torch.tanh(f) if self.sees_state else f)
        return out

    def compiled_segments(self, memory):
        """The gate for the compiled streaming step: the state path (its MLP, the probe query
        unit-normed and the probe's head context precomputed), the feature path's first layer
        as rows of the step's projections (of the raw features, folded, and of phi), its
        output layer and the bound."""
        seg = {}
        if self.sees_state:
            with torch.no_grad():
                probe_q = F.normalize(self.probe_query, dim=-1)
                probe_ctx = memory.head_context(self.probe_phi)
            seg.update(gate_state_in_w=to_numpy(self.state_in.weight),
                       gate_state_in_b=to_numpy(self.state_in.bias),
                       gate_state_out_w=to_numpy(self.state_out.weight)[0],
                       gate_state_out_b=to_numpy(self.state_out.bias), probe_q=to_numpy(probe_q),
                       probe_ctx=to_numpy(probe_ctx))
        if self.sees_features:
            P = memory.config.feature_proj_dim
            w, b = to_numpy(self.feat_in.weight), to_numpy(self.feat_in.bias)        # (Hg, P + F)
            seg.update(x_rows=[memory.folded(w[:, P:], torch.zeros(len(b)))],
                       phi_rows=[(w[:, :P], b)], gate_feat_out_w=to_numpy(self.feat_out.weight)[0],
                       gate_feat_out_b=to_numpy(self.feat_out.bias),
                       gate_feature_bound=to_numpy([self.feature_bound]))
        return seg

    def decide(self, memory, W, b, enc, cand, rs, threshold, gate_mode):
        if gate_mode in RESTING:   # training warm-up: the gate rests; write every step
            ones = cand['surprise'].new_ones(cand['surprise'].shape)   # ('open') or each
            if gate_mode == 'random':                                   # with chance 1/2
                ones = (torch.rand(ones.shape) < 0.5).to(ones.dtype)
            return ones, ones
        sig = self.signals(memory, W, b, enc, cand) if self.sees_state else None
        prob = torch.sigmoid(self.logit(sig, enc.get('gate_ctx')))
        return prob, straight_through(prob, threshold, gate_mode)


class AlwaysWrite(WriteRule):
    def decide(self, memory, W, b, enc, cand, rs, threshold, gate_mode):
        ones = cand['surprise'].new_ones(cand['surprise'].shape)
        return ones, ones

    def scheduled(self, rs):
        return True


class RandomSchedule(WriteRule):
    """Bernoulli(rate) writes, drawn from the episode's generator."""

    def __init__(self, rate):
        super().__init__()
        self.rate = rate

    def start(self, B, generator=None):
        return {'t': 0, 'generator': generator, 'B': B}

    def draw(self, rs):
        return (torch.rand(rs['B'], generator=rs['generator']) < self.rate).float()

    def decide(self, memory, W, b, enc, cand, rs, threshold, gate_mode):
        g = self.draw(rs)
        return g, g

    def scheduled(self, rs):
        return bool(self.draw(rs)[0] > 0)


class PeriodicSchedule(WriteRule):
    """A write every round(1 / rate) steps, at a phase drawn per episode."""

    def __init__(self, rate):
        super().__init__()
        self.period = max(1, round(1 / rate))

    def start(self, B, generator=None):
        return {'t': 0, 'phase': torch.randint(self.period, (B,), generator=generator)}

    def decide(self, memory, W, b, enc, cand, rs, threshold, gate_mode):
        g = ((rs['t'] + rs['phase']) % self.period == 0).float()
        return g, g

    def scheduled(self, rs):
        return bool((rs['t'] + rs['phase'][0]) % self.period == 0)


class SkipRNN(WriteRule):
    """Skip-RNN control: the gate reads the state through a learned probe, never the input;
    trained with a budget loss only (it gets no action-surprise signal)."""

    def __init__(self, config):
        super().__init__()
        dk, dv, rate = config.d_key, config.d_value, config.write_rate
        self.skip_probe = nn.Parameter(torch.randn(dk) / math.sqrt(dk))
        self.skip_gate = nn.Linear(dv, 1)
        nn.init.constant_(self.skip_gate.bias, math.log(rate / (1 - rate)) if rate < 1 else 5.0)

    def start(self, B, generator=None):
        return {'t': 0, 'u': torch.ones(B), 'du': torch.zeros(B)}   # write at the first step

    def delta(self, W, b):
        """Increment of the write accumulator, from the state alone."""
        probe = torch.einsum('k,bkv->bv', self.skip_probe, W) + b
        return torch.sigmoid(self.skip_gate(torch.tanh(probe)).squeeze(-1))

    def decide(self, memory, W, b, enc, cand, rs, threshold, gate_mode):
        u = rs['u']
        hard = (u >= 0.5).float()
        return u, (hard if gate_mode == 'hard' else hard + u - u.detach())

    def advance(self, memory, W, b, g, rs):
        wrote = g.detach() > 0.5     # reset on a write, else accumulate
        du = torch.where(wrote, self.delta(W, b), rs['du'])
        rs['u'] = torch.where(wrote, du, rs['u'] + torch.minimum(du, 1 - rs['u']))
        rs['du'] = du
        rs['t'] += 1
        return rs


RULES = {   # the write rules of configuration_aura.KINDS: (config, gate inputs) -> rule
    'learned_gate': LearnedGate,
    'always': lambda config, sees: AlwaysWrite(),
    'random': lambda config, sees: RandomSchedule(config.write_rate),
    'periodic': lambda config, sees: PeriodicSchedule(config.write_rate),
    'skip_rnn': lambda config, sees: SkipRNN(config),
}


def build_write_rule(config):
    _, rule, sees = KINDS[config.kind]
    if rule is None:
        raise ValueError(f'no write rule for memory kind {config.kind!r}')
    return RULES[rule](config, sees)
