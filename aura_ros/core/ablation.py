"""Gate-input ablations: what a trained learned gate decides when one of its inputs no longer
carries what the observation shows. Written once; the closed-loop and synthetic benchmarks
use it.

A learned gate (``write_rules.LearnedGate``) sees two inputs per step:
    'state'     its signals computed against the memory: log surprise, action change now and
                next (``rule.signals``, (B, 3));
    'features'  its first layer on the step's features (``enc['gate_ctx']``, (B, Hg)).
``recording(memory)`` collects both per episode and step (streaming steps, batch 1, or
sequences: each of a sequence's B rows is an episode); ``replaced(memory, which, source)`` runs
the memory with one of them replaced by ``source(t, original)`` (original (B, n): every row its
own value). Two sources, built from recorded calibration episodes:
    ``at_mean(recorded)``     the mean over every recorded step: no information at all;
    ``shuffled(recorded)``    the value another episode had at the same step: the input keeps
                              its distribution (and its typical time course) but loses its
                              link to what this episode's camera shows.
Inside both contexts the memory runs its reference (torch) step, not the compiled one.
"""
from contextlib import contextmanager

import numpy as np
import torch

WHICH = ('state', 'features')


class _StepClock:
    """The step index within the current episode: 0 at ``rule.start`` (``on_start()`` is
    called then), +1 at each ``rule.advance`` (streaming and sequences alike)."""

    def __init__(self, rule, on_start=None):
        self.t = 0
        self.rule = rule
        start, advance = rule.start, rule.advance

        def counted_start(batch, *args, **kwargs):   # rule.start(B, generator)
            self.t = 0
            if on_start is not None:
                on_start(batch)
            return start(batch, *args, **kwargs)

        def counted_advance(*args, **kwargs):
            out = advance(*args, **kwargs)
            self.t += 1
            return out
        rule.start, rule.advance = counted_start, counted_advance

    def close(self):
        for name in ('start', 'advance'):
            self.rule.__dict__.pop(name, None)


def _learned_gate(memory):
    rule = getattr(memory, 'rule', None)
    if rule is None or not hasattr(rule, 'sees_state'):
        raise ValueError(f'{memory.config.kind} has no learned gate to ablate')
    return rule


@contextmanager
def _reference_steps(memory):
    was = memory.__dict__.get('fast_inference')
    memory.fast_inference = False
    try:
        yield
    finally:
        if was is None:
            memory.__dict__.pop('fast_inference', None)
        else:
            memory.fast_inference = was


@contextmanager
def recording(memory):
    """Yields a list of episodes, each a dict of 'state' and 'features' arrays (T, n) (the
    inputs the gate sees, one row per step). An episode starts at each ``memory.reset()``
    (streaming); a ``forward_sequence`` call of B rows starts B episodes."""
    rule = _learned_gate(memory)
    episodes, pending = [], []      # pending: a sequence's features, encoded before its start
    open_rows = [0]                 # episodes the current start opened (the last ones)

    def on_start(rows):
        ctx = pending.pop() if pending else None       # a gate without features: none
        for j in range(rows):
            episodes.append({'state': [], 'features': [] if ctx is None else list(ctx[j])})
        open_rows[0] = rows
    clock = _StepClock(rule, on_start=on_start)
    signals, encode = rule.signals, memory.encode

    def record_signals(*args):
        result = signals(*args)
        out = result.detach().numpy()
        if episodes:                               # (steps before the first reset: not kept)
            first = len(episodes) - open_rows[0]
            for j in range(min(len(out), open_rows[0])):
                episodes[first + j]['state'].append(out[j].copy())
        return result

    def record_encode(features):
        enc = encode(features)
        ctx = enc.get('gate_ctx')
        if ctx is not None and ctx.dim() == 2 and episodes:   # streaming: this episode's step
            episodes[-1]['features'].append(ctx.detach()[0].numpy().copy())
        elif ctx is not None and ctx.dim() == 3:   # a sequence: its episodes start next
            pending.append(ctx.detach().numpy().copy())
        return enc

    rule.signals, memory.encode = record_signals, record_encode
    try:
        with _reference_steps(memory):
            yield episodes
    finally:
        del rule.signals, memory.encode
        clock.close()
        episodes[:] = [{k: np.array(v, np.float32) for k, v in ep.items()}
                       for ep in episodes if ep['state'] or ep['features']]


def at_mean(recorded, which):
    """Source: the mean of ``which`` over every recorded step."""
    rows = [ep[which] for ep in recorded if len(ep[which])]
    if not rows:
        raise ValueError(f'nothing recorded for the gate input {which!r}')
    mean = torch.from_numpy(np.concatenate(rows).mean(0))
    return lambda t, original: mean.expand_as(original)


def shuffled(recorded, which, seed=0):
    """Source: the value of ``which`` that a recorded episode had at the same step ``t``;
    episode after episode, the donor changes (drawn per episode, among those that lasted to
    step ``t``; past every donor's end, the longest donor's last step). Each of a batch's B
    rows gets a donor of its own (distinct while there are enough donors)."""
    donors = [ep[which] for ep in recorded if len(ep[which])]
    if not donors:
        raise ValueError(f'nothing recorded for the gate input {which!r}')
    rng = np.random.default_rng(seed)
    order = {'pick': None}
    longest = max(donors, key=len)

    def donor_row(offset, t):
        pick = order['pick']
        for k in range(len(pick)):
            i = pick[(offset + k) % len(pick)]
            if len(donors[i]) > t:
                return donors[i][t]
        return longest[-1]

    def source(t, original):
        if t == 0 or order['pick'] is None:
            order['pick'] = rng.permutation(len(donors))
        rows = np.stack([donor_row(j, t) for j in range(len(original))])
        return torch.from_numpy(rows).to(original.dtype)
    return source


@contextmanager
def replaced(memory, which, source):
    """Run ``memory`` with its gate's input ``which`` ('state' or 'features') replaced by
    ``source(t, original)`` at step t of each episode."""
    if which not in WHICH:
        raise ValueError(f'which must be one of {WHICH}, got {which!r}')
    rule = _learned_gate(memory)
    if which == 'state' and not rule.sees_state or which == 'features' and \
            not rule.sees_features:
        raise ValueError(f'the {memory.config.kind} gate does not see {which!r}')
    clock = _StepClock(rule)
    if which == 'state':
        signals = rule.signals
        rule.signals = lambda *args: source(clock.t, signals(*args))
    else:
        encode = memory.encode

        def encode_replaced(features):
            enc = encode(features)
            ctx = enc['gate_ctx']
            if ctx.dim() == 2:                       # streaming: this step
                enc['gate_ctx'] = source(clock.t, ctx)
            else:                                    # a sequence (B, T, Hg): every step
                enc['gate_ctx'] = torch.stack([source(t, ctx[:, t])
                                               for t in range(ctx.shape[1])], 1)
            return enc
        memory.encode = encode_replaced
    try:
        with _reference_steps(memory):
            yield
    finally:
        if which == 'state':
            del rule.signals
        else:
            del memory.encode
        clock.close()
