"""Compiled (numba) streaming steps, batch 1: the fast-weight memory and the KV-cache baseline.

``FastStep`` runs the same math as ``FastWeightMemory.transition`` (the torch step, which
training uses and the tests compare against), arranged for a robot's control loop: feature
normalisation folded into the first layers, every weight stored row-major (out, in), all work
arrays allocated once, the write done in place. It is built from the memory's parameters, which
the modules that own them declare by name (``compiled_segments``: the projection and head in
MemoryPolicy, keys, values and write strengths in FastWeightMemory, the gate in LearnedGate);
the kernels read them by the same names (``P``, below). It
takes the gate threshold on every call, so a threshold changed at run time applies on the
next step. One compiled call computes the candidate write and both actions, decides (the
learned gate against the threshold, or a decision an input-blind schedule made before the
call) and writes only if it decided so. The live state stays in the memory's W and b tensors,
which share storage with the arrays used here.

``FastKV`` gives the KV-cache baseline the same care: the same compiled encoder and action
head, keys and values appended into preallocated buffers (doubling when full), and the
recency-biased attention over them compiled too. The step-cost benchmark compares the two.
"""
import math
from collections import namedtuple

import numba
import numpy as np

from aura_ros.core.configuration_aura import LOG_EPS, SIGNAL_SCALE

SQRT1_2 = 1.0 / math.sqrt(2.0)


@numba.njit(cache=True, fastmath=True)
def _erf(x):
    """erf as the rational approximation Eigen and XLA use for float32 (|error| < 1e-7, well
    inside float32 rounding; test_fast_step checks it against math.erf). Twice as fast as the
    libm call, and erf is the costliest part of the step (one per GELU unit)."""
    x = min(max(x, -4.0), 4.0)           # erf(+-4) is +-1 in float32
    x2 = x * x
    p = x2 * -2.72614225801306e-10 + 2.77068142495902e-08
    p = x2 * p - 2.10102402082508e-06
    p = x2 * p - 5.69250639462346e-05
    p = x2 * p - 7.34990630326855e-04
    p = x2 * p - 2.95459980854025e-03
    p = x2 * p - 1.60960333262415e-02
    q = x2 * -1.45660718464996e-05 - 2.13374055278905e-04
    q = x2 * q - 1.68282697438203e-03
    q = x2 * q - 7.37332916720468e-03
    q = x2 * q - 1.42647390514189e-02
    return x * p / q


@numba.njit(cache=True, fastmath=True)
def _gelu(x):  # exact (erf) GELU, as torch's default
    return 0.5 * x * (1.0 + _erf(x * SQRT1_2))


@numba.njit(cache=True, fastmath=True)
def _matvec(w, bias, x, out):
    """out = w @ x + bias, w (n, m) row-major; ``bias`` may be ``out`` itself (out += w @ x).
    Four rows per pass over x: fewer horizontal sums and loads than one dot product per row."""
    n, m = w.shape
    i = 0
    while i + 4 <= n:
        s0, s1, s2, s3 = bias[i], bias[i + 1], bias[i + 2], bias[i + 3]
        for j in range(m):
            xj = x[j]
            s0 += w[i, j] * xj
            s1 += w[i + 1, j] * xj
            s2 += w[i + 2, j] * xj
            s3 += w[i + 3, j] * xj
        out[i], out[i + 1], out[i + 2], out[i + 3] = s0, s1, s2, s3
        i += 4
    while i < n:
        s = bias[i]
        for j in range(m):
            s += w[i, j] * x[j]
        out[i] = s
        i += 1


@numba.njit(cache=True, fastmath=True)
def _seg(buf, offs, i):
    return buf[offs[i]:offs[i + 1]]


def _names(kind, names):
    """An index by name, e.g. P.head_r == 6: numba reads it as constants (a cached kernel is
    recompiled when this file changes, so the names and their kernels stay in one file)."""
    return namedtuple(kind, names)(*range(len(names)))


# What the kernels read, by name: packed weights (``params``, offsets ``poffs``; segment i
# spans [poffs[i], poffs[i + 1])), sizes (``dims``) and work arrays (``work``, ``woffs``). The
# modules that own the weights declare them under these names (``compiled_segments`` of
# MemoryPolicy, FastWeightMemory, LearnedGate, KVCache); ``pack`` refuses a name not listed
# here. Few arguments keep numba's per-call dispatch cheap.
P = _names('Params', (
    'x_w', 'x_b',            # one projection of the raw features: the rows of x_rows
    'phi_w', 'phi_b',        # one projection of phi: the rows of phi_rows
    'ln_w', 'ln_b', 'ln_eps', 'head_r', 'head_out_w', 'head_out_b', 'action_scale',
    'kqv_phi', 'value_in_w', 'value_in_b', 'value_out_w', 'value_out_b',      # the memory
    'gate_state_in_w', 'gate_state_in_b', 'gate_state_out_w', 'gate_state_out_b', 'probe_q',
    'probe_ctx', 'gate_feat_out_w', 'gate_feat_out_b', 'gate_feature_bound',  # the gate
    'attn_scale', 'attn_recency'))                                           # the KV cache
D = _names('Dims', (
    'd_key', 'd_value', 'proj', 'head_hidden', 'gate_state_hidden', 'gate_feat_hidden',
    'action_dim', 'sees_state', 'sees_features', 'has_base', 'read_heads', 'value_hidden',
    'nonlinear_keys', 'categorical'))
WK = _names('Work', (
    'z', 'phi', 'pz', 'kq', 'r', 'err', 'hidden', 'raw', 'actions', 'ro', 'v', 'value_hidden',
    'scores'))


def pack(segments):
    """Named float32 arrays -> (params, poffs) in the order of P; the x_rows / phi_rows blocks
    stacked into x_w, x_b / phi_w, phi_b. A name the kernels do not read is refused; one they
    read but nobody declared is empty (the dims say it is absent)."""
    segments = dict(segments)
    for name in ('x', 'phi'):
        rows = segments.pop(f'{name}_rows')
        segments[f'{name}_w'] = np.concatenate([w for w, _ in rows])
        segments[f'{name}_b'] = np.concatenate([b for _, b in rows])
    unknown = set(segments) - set(P._fields)
    if unknown:
        raise ValueError(f'compiled step: no kernel reads {sorted(unknown)} '
                         f'(core/fast_step.py P lists what they read)')
    flat = [np.ravel(segments.get(name, np.zeros(0))).astype(np.float32) for name in P._fields]
    return (np.concatenate(flat),
            np.cumsum([0] + [len(f) for f in flat]).astype(np.int64))


def _by_name(index, values, dtype):
    """{name: value} -> an array in the order of ``index`` (absent names: 0)."""
    unknown = set(values) - set(index._fields)
    if unknown:
        raise ValueError(f'compiled step: unknown {type(index).__name__} {sorted(unknown)}')
    return np.array([values.get(name, 0) for name in index._fields], dtype)


@numba.njit(cache=True, fastmath=True)
def _encode(x, params, poffs, dims, work, woffs):
    """State-free part of a step: z = [k, q_1..q_n (+ q_v), v, phi pre-activation, extra]
    from x (normalisation folded in), unit k and queries in WK.kq, phi = GELU(LayerNorm(.)),
    pz = [head context, extra]."""
    dk, dv, n_phi = dims[D.d_key], dims[D.d_value], dims[D.proj]
    nq = dims[D.read_heads] + (1 if dims[D.value_hidden] > 0 else 0)
    z, phi, pz = _seg(work, woffs, WK.z), _seg(work, woffs, WK.phi), _seg(work, woffs, WK.pz)
    kq = _seg(work, woffs, WK.kq).reshape((1 + nq, dk))
    _matvec(_seg(params, poffs, P.x_w).reshape((z.shape[0], x.shape[0])),
            _seg(params, poffs, P.x_b), x, z)
    off = (1 + nq) * dk + dv                       # LayerNorm + GELU of the phi projection
    mean = 0.0
    for i in range(n_phi):
        mean += z[off + i]
    mean /= n_phi
    var = 0.0
    for i in range(n_phi):
        d = z[off + i] - mean
        var += d * d
    inv = 1.0 / math.sqrt(var / n_phi + params[poffs[P.ln_eps]])
    ln_w, ln_b = _seg(params, poffs, P.ln_w), _seg(params, poffs, P.ln_b)
    for i in range(n_phi):
        phi[i] = _gelu((z[off + i] - mean) * inv * ln_w[i] + ln_b[i])
    if dims[D.nonlinear_keys] == 1:                           # keys, queries, value also read phi
        _matvec(_seg(params, poffs, P.kqv_phi).reshape((off, n_phi)), z[:off], phi, z[:off])
    for row in range(1 + nq):                      # unit key and queries
        n = 0.0
        for i in range(dk):
            kq[row, i] = z[row * dk + i]
            n += kq[row, i] * kq[row, i]
        n = max(math.sqrt(n), 1e-12)
        for i in range(dk):
            kq[row, i] /= n
    _matvec(_seg(params, poffs, P.phi_w).reshape((pz.shape[0], n_phi)),
            _seg(params, poffs, P.phi_b), phi, pz)


@numba.njit(cache=True, fastmath=True)
def _gelu_rows(h):  # h = GELU(h) in place, a separate pass so it vectorises
    for i in range(h.shape[0]):
        h[i] = _gelu(h[i])


@numba.njit(cache=True, fastmath=True)
def _head_out(params, poffs, dims, hidden, out):
    w = _seg(params, poffs, P.head_out_w).reshape((dims[D.action_dim], dims[D.head_hidden]))
    _matvec(w, _seg(params, poffs, P.head_out_b), hidden, out)


@numba.njit(cache=True, fastmath=True)
def _head(params, poffs, dims, ctx, r, hidden, out):
    """The action head's raw output: out = W_o GELU(ctx + W_r r) + b_o."""
    H, R = dims[D.head_hidden], r.shape[0]
    _matvec(_seg(params, poffs, P.head_r).reshape((H, R)), ctx, r, hidden)
    _gelu_rows(hidden)
    _head_out(params, poffs, dims, hidden, out)


@numba.njit(cache=True, fastmath=True)
def _head2(params, poffs, dims, ctx, r0, r1, hidden, out):
    """``_head`` on two readouts under one context, one pass over the weights: hidden (2, H),
    out (2, A)."""
    H, R = dims[D.head_hidden], r0.shape[0]
    whr = _seg(params, poffs, P.head_r).reshape((H, R))
    h = 0
    while h < H:   # two rows per pass (the last one twice if H is odd)
        g = min(h + 1, H - 1)
        s00, s01, s10, s11 = ctx[h], ctx[h], ctx[g], ctx[g]
        for j in range(R):
            w0, w1 = whr[h, j], whr[g, j]
            s00 += w0 * r0[j]
            s01 += w0 * r1[j]
            s10 += w1 * r0[j]
            s11 += w1 * r1[j]
        hidden[0, h], hidden[1, h], hidden[0, g], hidden[1, g] = s00, s01, s10, s11
        h += 2
    for row in range(2):
        _gelu_rows(hidden[row])
        _head_out(params, poffs, dims, hidden[row], out[row])


@numba.njit(cache=True, fastmath=True)
def _compose(params, poffs, dims, base, raw, out):
    scale = _seg(params, poffs, P.action_scale)
    for a in range(dims[D.action_dim]):
        out[a] = base[a] + scale[a] * raw[a] if dims[D.has_base] == 1 else raw[a]


@numba.njit(cache=True, fastmath=True)
def _step(x, W, b, base, params, poffs, dims, work, woffs, decision, threshold):
    """One streaming step. Leaves the actions in ``work`` (WK.actions row 0 with the write, row 1
    without), writes W, b in place iff it decides to; returns (wrote, prob, surprise).
    decision -1: the learned gate decides against ``threshold``; 0/1: a schedule did."""
    prob, surprise, eta_w, eta_b = _propose(x, W, b, base, params, poffs, dims, work, woffs)
    wrote = prob > threshold if decision < 0 else decision == 1
    if wrote:   # a closed gate never touches the state
        _write(W, b, _seg(work, woffs, WK.kq)[:dims[D.d_key]], _seg(work, woffs, WK.err), eta_w,
               eta_b)
    return wrote, prob, surprise


@numba.njit(cache=True, fastmath=True)
def _readouts(W, b, rows, out):
    """out[r] = rows[r] W + b for every row: one pass over W, contiguous along d_v."""
    dk, dv = W.shape
    for r in range(rows.shape[0]):
        for j in range(dv):
            out[r, j] = b[j]
    for i in range(dk):
        for r in range(rows.shape[0]):
            c = rows[r, i]
            for j in range(dv):
                out[r, j] += c * W[i, j]


@numba.njit(cache=True, fastmath=True)
def _error(v, prediction, err):
    """err = v - prediction (what the memory fails to predict); returns the surprise,
    mean(err^2)."""
    surprise = 0.0
    for j in range(v.shape[0]):
        err[j] = v[j] - prediction[j]
        surprise += err[j] * err[j]
    return surprise / v.shape[0]


@numba.njit(cache=True, fastmath=True)
def _with_write(ro, k, q, eta_w, eta_b, err, r_no, r_w):
    """Readouts without (r_no = ro) and with a write of err at key k: r_w = r_no +
    (eta_w (q_h . k) + eta_b) err, for each query row h of q."""
    dk, dv = k.shape[0], err.shape[0]
    for h in range(q.shape[0]):
        c = eta_b
        for i in range(dk):
            c += eta_w * k[i] * q[h, i]
        for j in range(dv):
            r_no[h * dv + j] = ro[h, j]
            r_w[h * dv + j] = ro[h, j] + c * err[j]


@numba.njit(cache=True, fastmath=True)
def _propose(x, W, b, base, params, poffs, dims, work, woffs):
    """Everything up to the write decision; returns (prob, surprise, eta_w, eta_b)."""
    dk, dv, H, A = dims[D.d_key], dims[D.d_value], dims[D.head_hidden], dims[D.action_dim]
    Hs, Hf = dims[D.gate_state_hidden], dims[D.gate_feat_hidden]
    nq, Hv = dims[D.read_heads], dims[D.value_hidden]
    _encode(x, params, poffs, dims, work, woffs)
    z, pz = _seg(work, woffs, WK.z), _seg(work, woffs, WK.pz)
    n_reads = nq + (1 if Hv > 0 else 0)
    kq = _seg(work, woffs, WK.kq).reshape((1 + n_reads, dk))
    ro = _seg(work, woffs, WK.ro).reshape((-1, dv))  # k, q_1..q_n (, q_v), probe q_1..q_n
    _readouts(W, b, kq, ro[:1 + n_reads])
    r = _seg(work, woffs, WK.r).reshape((4, nq * dv))  # with / without, probe with / without
    voff = (1 + n_reads) * dk
    v = _seg(work, woffs, WK.v)
    for j in range(dv):
        v[j] = z[voff + j]
    if Hv > 0:   # the value conditioned on what memory holds: v += MLP([q_v W + b, phi])
        _value_update(ro[n_reads], _seg(work, woffs, WK.phi), params, poffs, Hv,
                      _seg(work, woffs, WK.value_hidden), v)
    err = _seg(work, woffs, WK.err)
    surprise = _error(v, ro[0], err)
    eta_w = 1.0 / (1.0 + math.exp(-pz[H]))         # pz: [head ctx (H), eta (2), gate ctx (Hf)]
    eta_b = 1.0 / (1.0 + math.exp(-pz[H + 1]))
    _with_write(ro[1:1 + nq], kq[0], kq[1:1 + nq], eta_w, eta_b, err, r[1], r[0])
    hidden = _seg(work, woffs, WK.hidden).reshape((4, H))
    raw = _seg(work, woffs, WK.raw).reshape((4, A))
    actions = _seg(work, woffs, WK.actions).reshape((2, A))
    _head2(params, poffs, dims, pz, r[0], r[1], hidden[:2], raw[:2])  # both readouts
    for row in range(2):
        _compose(params, poffs, dims, base, raw[row], actions[row])
    if dims[D.sees_state] == 0 and dims[D.sees_features] == 0:
        return 1.0, surprise, eta_w, eta_b
    logit = 0.0
    if dims[D.sees_state] == 1:                         # action-relevant surprise, from the state
        now = _change(raw[0], raw[1], dims[D.categorical])
        qp = _seg(params, poffs, P.probe_q).reshape((nq, dk))
        pro = ro[1 + n_reads:]                     # probe readouts: r[3] without, r[2] with
        _readouts(W, b, qp, pro)
        _with_write(pro, kq[0], qp, eta_w, eta_b, err, r[3], r[2])
        _head2(params, poffs, dims, _seg(params, poffs, P.probe_ctx), r[2], r[3], hidden[2:],
               raw[2:])
        nxt = _change(raw[2], raw[3], dims[D.categorical])
        sig0 = SIGNAL_SCALE * math.log(surprise + LOG_EPS)
        sig1 = SIGNAL_SCALE * math.log(now + LOG_EPS)
        sig2 = SIGNAL_SCALE * math.log(nxt + LOG_EPS)
        gsw = _seg(params, poffs, P.gate_state_in_w).reshape((Hs, 3))
        gsb, gso = _seg(params, poffs, P.gate_state_in_b), _seg(params, poffs, P.gate_state_out_w)
        logit = params[poffs[P.gate_state_out_b]]
        for h in range(Hs):
            logit += gso[h] * _gelu(gsb[h] + gsw[h, 0] * sig0 + gsw[h, 1] * sig1
                                    + gsw[h, 2] * sig2)
    if dims[D.sees_features] == 1:                          # what one observation shows
        gfo = _seg(params, poffs, P.gate_feat_out_w)
        f = params[poffs[P.gate_feat_out_b]]
        for h in range(Hf):
            f += gfo[h] * _gelu(pz[H + 2 + h] + z[voff + dv + dims[D.proj] + h])
        bound = params[poffs[P.gate_feature_bound]]
        logit += bound * math.tanh(f) if dims[D.sees_state] == 1 else f
    return 1.0 / (1.0 + math.exp(-logit)), surprise, eta_w, eta_b


@numba.njit(cache=True, fastmath=True)
def _change(a, b, categorical):
    """How much an action changes (write_rules.LearnedGate.change): |a - b|, or for
    categorical actions the total-variation distance of softmax(a) and softmax(b)."""
    if categorical == 0:
        s = 0.0
        for i in range(a.shape[0]):
            d = a[i] - b[i]
            s += d * d
        return math.sqrt(s)
    ma, mb = a.max(), b.max()
    za = zb = 0.0
    for i in range(a.shape[0]):
        za += math.exp(a[i] - ma)
        zb += math.exp(b[i] - mb)
    s = 0.0
    for i in range(a.shape[0]):
        s += abs(math.exp(a[i] - ma) / za - math.exp(b[i] - mb) / zb)
    return 0.5 * s


@numba.njit(cache=True, fastmath=True)
def _value_update(rv, phi, params, poffs, Hv, hidden, v):
    """v += W_out GELU(W_in [q_v W + b, phi] + b_in) + b_out (rv: q_v W + b)."""
    dv, n_phi = v.shape[0], phi.shape[0]
    w_in = _seg(params, poffs, P.value_in_w).reshape((Hv, dv + n_phi))
    b_in = _seg(params, poffs, P.value_in_b)
    h = hidden[:Hv]
    _matvec(w_in[:, :dv], b_in, rv, h)
    _matvec(w_in[:, dv:], h, phi, h)
    _gelu_rows(h)
    b_out = _seg(params, poffs, P.value_out_b)
    for j in range(dv):
        v[j] += b_out[j]
    _matvec(_seg(params, poffs, P.value_out_w).reshape((dv, Hv)), v, h, v)


@numba.njit(cache=True, fastmath=True)
def _read(W, b, kq, nq, v, eta_w, eta_b, r, err, ro):
    """The memory read alone (kq: the key, then nq queries; ro: scratch (1 + nq, dv)):
    err = v - (k W + b); r[1] = the readouts [q_i W + b]_i without the write, r[0] = the
    readouts had (k, v) been written. Returns the surprise, mean(err^2)."""
    _readouts(W, b, kq[:1 + nq], ro)
    surprise = _error(v, ro[0], err)
    _with_write(ro[1:], kq[0], kq[1:1 + nq], eta_w, eta_b, err, r[1], r[0])
    return surprise


@numba.njit(cache=True, fastmath=True)
def _write(W, b, k, err, eta_w, eta_b):
    """The delta-rule write, in place: W += eta_w k e^T, b += eta_b e."""
    for i in range(W.shape[0]):
        ki = eta_w * k[i]
        for j in range(W.shape[1]):
            W[i, j] += ki * err[j]
    for j in range(b.shape[0]):
        b[j] += eta_b * err[j]


class _Compiled:
    """The packed weights, sizes and work arrays of one memory's compiled step."""

    def __init__(self, memory, dims, work):
        """dims, work: {name: size} beyond the sizes every memory has (D, WK)."""
        cfg = memory.config
        self.params, self.poffs = pack(memory.compiled_segments())
        self.dims = _by_name(D, dict(d_key=cfg.d_key, d_value=cfg.d_value,
                                     proj=cfg.feature_proj_dim, head_hidden=cfg.head_hidden,
                                     action_dim=cfg.action_dim, **dims), np.int64)
        self.woffs = np.cumsum([0] + list(_by_name(WK, work, np.int64))).astype(np.int64)
        self.work = np.zeros(self.woffs[-1], np.float32)
        self.residual = cfg.action_mode == 'residual'
        self.no_base = np.zeros(cfg.action_dim, np.float32)

    def view(self, i):
        return self.work[self.woffs[i]:self.woffs[i + 1]]

    def segment(self, i):
        return self.params[self.poffs[i]:self.poffs[i + 1]]


class FastStep(_Compiled):
    def __init__(self, memory):
        cfg = memory.config
        dk, dv, A, H = cfg.d_key, cfg.d_value, cfg.action_dim, cfg.head_hidden
        nq, Hv = cfg.read_heads, cfg.value_hidden
        n_reads = nq + (1 if Hv else 0)
        rule = memory.rule
        sees_state = getattr(rule, 'sees_state', False)
        sees_feat = getattr(rule, 'sees_features', False)
        Hg = cfg.gate_hidden
        dims = dict(gate_state_hidden=Hg if sees_state else 0,
                    gate_feat_hidden=Hg if sees_feat else 0, sees_state=int(sees_state),
                    sees_features=int(sees_feat), read_heads=nq, value_hidden=Hv,
                    nonlinear_keys=int(cfg.nonlinear_keys),
                    categorical=int(cfg.action_change == 'distribution'))
        Hf = dims['gate_feat_hidden']
        super().__init__(memory, dims, dict(
            z=(1 + n_reads) * dk + dv + cfg.feature_proj_dim + Hf, phi=cfg.feature_proj_dim,
            pz=H + 2 + Hf, kq=(1 + n_reads) * dk, r=4 * nq * dv, err=dv, hidden=4 * H,
            raw=4 * A, actions=2 * A, ro=(1 + n_reads + nq) * dv, v=dv,
            value_hidden=max(Hv, 1)))
        self.actions = self.view(WK.actions).reshape(2, A)   # row 0: with the write, 1: without

    def __call__(self, W, b, x, base, decision=-1, threshold=0.5):
        """One step on the live state (W (dk, dv), b (dv,) float32 views, updated in place).
        ``decision``: -1 lets the learned gate decide against ``threshold``, 0/1 is the arm's
        own schedule. Returns (action (a fresh array), wrote, prob, surprise)."""
        dims = self.dims
        has_base = self.residual and base is not None
        dims[D.has_base] = has_base
        wrote, prob, surprise = _step(x, W, b, base if has_base else self.no_base, self.params,
                                      self.poffs, dims, self.work, self.woffs, decision,
                                      threshold)
        return self.actions[0 if wrote else 1].copy(), wrote, prob, surprise

    # The memory operation alone (what the step-cost benchmark times against the KV-cache):
    def read(self, W, b, kq, v, eta_w, eta_b):
        """Readouts without / with a write of (k, v) (kq: the key, then the queries), the error
        and the surprise."""
        nq = kq.shape[0] - 1
        r = self.view(WK.r)[:2 * nq * v.shape[0]].reshape(2, -1)
        err = self.view(WK.err)
        ro = self.view(WK.ro)[:(1 + nq) * v.shape[0]].reshape(1 + nq, -1)
        return r, err, _read(W, b, kq, nq, v, eta_w, eta_b, r, err, ro)

    def write(self, W, b, k, err, eta_w, eta_b):
        _write(W, b, k, err, eta_w, eta_b)


# ---- the KV-cache baseline, with the same care -------------------------------------------------


@numba.njit(cache=True, fastmath=True)
def _attend(keys, values, n, q, scale, recency, scores, out):
    """Recency-biased softmax attention of q over the first n cached (k, v):
    score_i = scale (k_i . q) - recency (n - 1 - i); out = softmax(score) @ values.
    Separate passes (scores, max, exp, weighted sum) in float32 so each one vectorises: at
    100,000 steps this is bound by reading the 25.6 MB cache, as a BLAS version is."""
    dk, dv = keys.shape[1], values.shape[1]
    scale, recency = np.float32(scale), np.float32(recency)
    for i in range(n):
        s = np.float32(0.0)
        for j in range(dk):
            s += keys[i, j] * q[j]
        scores[i] = scale * s - recency * np.float32(n - 1 - i)
    top = scores[:n].max()
    for i in range(n):
        scores[i] = math.exp(scores[i] - top)
    total = scores[:n].sum()
    for j in range(dv):
        out[j] = 0.0
    for i in range(n):
        w = scores[i]
        for j in range(dv):
            out[j] += w * values[i, j]
    for j in range(dv):
        out[j] /= total


@numba.njit(cache=True, fastmath=True)
def _kv_step(x, keys, values, n, base, params, poffs, dims, work, woffs, scores):
    """Append this step's (k, v) at row n, attend with its q over rows 0..n, run the head."""
    dk, dv = dims[D.d_key], dims[D.d_value]
    _encode(x, params, poffs, dims, work, woffs)
    z, pz = _seg(work, woffs, WK.z), _seg(work, woffs, WK.pz)
    kq = _seg(work, woffs, WK.kq).reshape((2, dk))
    for i in range(dk):
        keys[n, i] = kq[0, i]
    for j in range(dv):
        values[n, j] = z[2 * dk + j]
    r = _seg(work, woffs, WK.r)
    _attend(keys, values, n + 1, kq[1], params[poffs[P.attn_scale]],
            params[poffs[P.attn_recency]], scores, r)
    raw, act = _seg(work, woffs, WK.raw), _seg(work, woffs, WK.actions)
    _head(params, poffs, dims, pz, r, _seg(work, woffs, WK.hidden), raw)
    _compose(params, poffs, dims, base, raw, act)


class FastKV(_Compiled):
    def __init__(self, memory):
        cfg = memory.config
        dk, dv, A, H = cfg.d_key, cfg.d_value, cfg.action_dim, cfg.head_hidden
        super().__init__(memory, dict(read_heads=1), dict(
            z=2 * dk + dv + cfg.feature_proj_dim, phi=cfg.feature_proj_dim, pz=H, kq=2 * dk,
            r=dv, hidden=H, raw=A, actions=A))
        self.scores = np.zeros(0, np.float32)

    def __call__(self, keys, values, n, x, base):
        """Append at row n of the (capacity, d) buffers (the caller grows them) and act."""
        if len(self.scores) < keys.shape[0]:
            self.scores = np.zeros(keys.shape[0], np.float32)
        dims = self.dims
        has_base = self.residual and base is not None
        dims[D.has_base] = has_base
        _kv_step(x, keys, values, n, base if has_base else self.no_base, self.params,
                 self.poffs, dims, self.work, self.woffs, self.scores)
        return self.view(WK.actions).copy()

    def attend(self, keys, values, n, q):
        """The memory operation alone: attention of q over the first n cached steps."""
        if len(self.scores) < n:
            self.scores = np.zeros(keys.shape[0], np.float32)
        out = self.view(WK.r)
        _attend(keys, values, n, q, self.segment(P.attn_scale)[0],
                self.segment(P.attn_recency)[0], self.scores, out)
        return out
