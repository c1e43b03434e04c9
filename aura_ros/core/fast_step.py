"""Compiled (numba) streaming steps, batch 1: the fast-weight memory and the KV-cache baseline.

``FastStep`` runs the same math as ``FastWeightMemory.transition`` (the torch step, which
training uses and the tests compare against), arranged for a robot's control loop: feature
normalisation folded into the first layers, every weight stored row-major (out, in), all work
arrays allocated once, the write done in place. It is built from the memory's parameters and
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


# Packed weights (``params``, offsets ``poffs``) and work arrays (``work``, ``woffs``): segment i
# spans [offs[i], offs[i + 1]). Few arguments keep numba's per-call dispatch cheap.
(P_WX, P_BX, P_LNW, P_LNB, P_WPHI, P_BPHI, P_WHR, P_WO, P_BO, P_SCALE, P_GSW, P_GSB, P_GSO,
 P_GFO, P_PROBEQ, P_PROBECTX, P_VIN, P_VINB, P_VOUT, P_VOUTB, P_KQVPHI, P_SCAL) = range(22)
W_Z, W_PHI, W_PZ, W_KQ, W_R, W_ERR, W_HID, W_RAW, W_ACT, W_RO, W_V, W_VH = range(12)
# dims: [d_key, d_value, P, H, Hs, Hf, A, sees_state, sees_features, has_base, read_heads,
#        value_hidden (0: plain delta rule), nonlinear_keys, categorical action change]
D_DK, D_DV, D_P, D_H, D_HS, D_HF, D_A, D_STATE, D_FEAT, D_BASE, D_NQ, D_HV, D_NLK, D_CAT = range(14)


@numba.njit(cache=True, fastmath=True)
def _encode(x, params, poffs, dims, work, woffs):
    """State-free part of a step: z = [k, q_1..q_n (+ q_v), v, phi pre-activation, extra]
    from x (normalisation folded in), unit k and queries in W_KQ, phi = GELU(LayerNorm(.)),
    pz = [head context, extra]."""
    dk, dv, P = dims[D_DK], dims[D_DV], dims[D_P]
    nq = dims[D_NQ] + (1 if dims[D_HV] > 0 else 0)
    z, phi, pz = _seg(work, woffs, W_Z), _seg(work, woffs, W_PHI), _seg(work, woffs, W_PZ)
    kq = _seg(work, woffs, W_KQ).reshape((1 + nq, dk))
    _matvec(_seg(params, poffs, P_WX).reshape((z.shape[0], x.shape[0])),
            _seg(params, poffs, P_BX), x, z)
    off = (1 + nq) * dk + dv                       # LayerNorm + GELU of the phi projection
    mean = 0.0
    for i in range(P):
        mean += z[off + i]
    mean /= P
    var = 0.0
    for i in range(P):
        d = z[off + i] - mean
        var += d * d
    inv = 1.0 / math.sqrt(var / P + params[poffs[P_SCAL]])
    ln_w, ln_b = _seg(params, poffs, P_LNW), _seg(params, poffs, P_LNB)
    for i in range(P):
        phi[i] = _gelu((z[off + i] - mean) * inv * ln_w[i] + ln_b[i])
    if dims[D_NLK] == 1:                           # keys, queries, value also read phi
        _matvec(_seg(params, poffs, P_KQVPHI).reshape((off, P)), z[:off], phi, z[:off])
    for row in range(1 + nq):                      # unit key and queries
        n = 0.0
        for i in range(dk):
            kq[row, i] = z[row * dk + i]
            n += kq[row, i] * kq[row, i]
        n = max(math.sqrt(n), 1e-12)
        for i in range(dk):
            kq[row, i] /= n
    _matvec(_seg(params, poffs, P_WPHI).reshape((pz.shape[0], P)), _seg(params, poffs, P_BPHI),
            phi, pz)


@numba.njit(cache=True, fastmath=True)
def _gelu_rows(h):  # h = GELU(h) in place, a separate pass so it vectorises
    for i in range(h.shape[0]):
        h[i] = _gelu(h[i])


@numba.njit(cache=True, fastmath=True)
def _head_out(params, poffs, dims, hidden, out):
    _matvec(_seg(params, poffs, P_WO).reshape((dims[D_A], dims[D_H])), _seg(params, poffs, P_BO),
            hidden, out)


@numba.njit(cache=True, fastmath=True)
def _head(params, poffs, dims, ctx, r, hidden, out):
    """The action head's raw output: out = W_o GELU(ctx + W_r r) + b_o."""
    H, R = dims[D_H], r.shape[0]
    _matvec(_seg(params, poffs, P_WHR).reshape((H, R)), ctx, r, hidden)
    _gelu_rows(hidden)
    _head_out(params, poffs, dims, hidden, out)


@numba.njit(cache=True, fastmath=True)
def _head2(params, poffs, dims, ctx, r0, r1, hidden, out):
    """``_head`` on two readouts under one context, one pass over the weights: hidden (2, H),
    out (2, A)."""
    H, R = dims[D_H], r0.shape[0]
    whr = _seg(params, poffs, P_WHR).reshape((H, R))
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
    scale = _seg(params, poffs, P_SCALE)
    for a in range(dims[D_A]):
        out[a] = base[a] + scale[a] * raw[a] if dims[D_BASE] == 1 else raw[a]


@numba.njit(cache=True, fastmath=True)
def _step(x, W, b, base, params, poffs, dims, work, woffs, decision, threshold):
    """One streaming step. Leaves the actions in ``work`` (W_ACT row 0 with the write, row 1
    without), writes W, b in place iff it decides to; returns (wrote, prob, surprise).
    decision -1: the learned gate decides against ``threshold``; 0/1: a schedule did."""
    prob, surprise, eta_w, eta_b = _propose(x, W, b, base, params, poffs, dims, work, woffs)
    wrote = prob > threshold if decision < 0 else decision == 1
    if wrote:   # a closed gate never touches the state
        _write(W, b, _seg(work, woffs, W_KQ)[:dims[D_DK]], _seg(work, woffs, W_ERR), eta_w,
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
    dk, dv, H, Hs, Hf, A, nq, Hv = (dims[D_DK], dims[D_DV], dims[D_H], dims[D_HS],
                                    dims[D_HF], dims[D_A], dims[D_NQ], dims[D_HV])
    _encode(x, params, poffs, dims, work, woffs)
    z, pz = _seg(work, woffs, W_Z), _seg(work, woffs, W_PZ)
    n_reads = nq + (1 if Hv > 0 else 0)
    kq = _seg(work, woffs, W_KQ).reshape((1 + n_reads, dk))
    ro = _seg(work, woffs, W_RO).reshape((-1, dv))  # k, q_1..q_n (, q_v), probe q_1..q_n
    _readouts(W, b, kq, ro[:1 + n_reads])
    r = _seg(work, woffs, W_R).reshape((4, nq * dv))  # with / without, probe with / without
    voff = (1 + n_reads) * dk
    v = _seg(work, woffs, W_V)
    for j in range(dv):
        v[j] = z[voff + j]
    if Hv > 0:   # the value conditioned on what memory holds: v += MLP([q_v W + b, phi])
        _value_update(ro[n_reads], _seg(work, woffs, W_PHI), params, poffs, Hv,
                      _seg(work, woffs, W_VH), v)
    err = _seg(work, woffs, W_ERR)
    surprise = _error(v, ro[0], err)
    eta_w = 1.0 / (1.0 + math.exp(-pz[H]))         # pz: [head ctx (H), eta (2), gate ctx (Hf)]
    eta_b = 1.0 / (1.0 + math.exp(-pz[H + 1]))
    _with_write(ro[1:1 + nq], kq[0], kq[1:1 + nq], eta_w, eta_b, err, r[1], r[0])
    hidden = _seg(work, woffs, W_HID).reshape((4, H))
    raw = _seg(work, woffs, W_RAW).reshape((4, A))
    actions = _seg(work, woffs, W_ACT).reshape((2, A))
    scal = _seg(params, poffs, P_SCAL)             # [ln_eps, state bias, feature bias, bound]
    _head2(params, poffs, dims, pz, r[0], r[1], hidden[:2], raw[:2])  # both readouts
    for row in range(2):
        _compose(params, poffs, dims, base, raw[row], actions[row])
    if dims[D_STATE] == 0 and dims[D_FEAT] == 0:
        return 1.0, surprise, eta_w, eta_b
    logit = 0.0
    if dims[D_STATE] == 1:                         # action-relevant surprise, from the state
        now = _change(raw[0], raw[1], dims[D_CAT])
        qp = _seg(params, poffs, P_PROBEQ).reshape((nq, dk))
        pro = ro[1 + n_reads:]                     # probe readouts: r[3] without, r[2] with
        _readouts(W, b, qp, pro)
        _with_write(pro, kq[0], qp, eta_w, eta_b, err, r[3], r[2])
        _head2(params, poffs, dims, _seg(params, poffs, P_PROBECTX), r[2], r[3], hidden[2:],
               raw[2:])
        nxt = _change(raw[2], raw[3], dims[D_CAT])
        sig0 = SIGNAL_SCALE * math.log(surprise + LOG_EPS)
        sig1 = SIGNAL_SCALE * math.log(now + LOG_EPS)
        sig2 = SIGNAL_SCALE * math.log(nxt + LOG_EPS)
        gsw = _seg(params, poffs, P_GSW).reshape((Hs, 3))
        gsb, gso = _seg(params, poffs, P_GSB), _seg(params, poffs, P_GSO)
        logit = scal[1]
        for h in range(Hs):
            logit += gso[h] * _gelu(gsb[h] + gsw[h, 0] * sig0 + gsw[h, 1] * sig1
                                    + gsw[h, 2] * sig2)
    if dims[D_FEAT] == 1:                          # what one observation shows
        gfo = _seg(params, poffs, P_GFO)
        f = scal[2]
        for h in range(Hf):
            f += gfo[h] * _gelu(pz[H + 2 + h] + z[voff + dv + dims[D_P] + h])
        logit += scal[3] * math.tanh(f) if dims[D_STATE] == 1 else f
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
    dv, P = v.shape[0], phi.shape[0]
    w_in = _seg(params, poffs, P_VIN).reshape((Hv, dv + P))
    b_in = _seg(params, poffs, P_VINB)
    h = hidden[:Hv]
    _matvec(w_in[:, :dv], b_in, rv, h)
    _matvec(w_in[:, dv:], h, phi, h)
    _gelu_rows(h)
    b_out = _seg(params, poffs, P_VOUTB)
    for j in range(dv):
        v[j] += b_out[j]
    _matvec(_seg(params, poffs, P_VOUT).reshape((dv, Hv)), v, h, v)


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


def _np(t):
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))


class _Compiled:
    """Packs a memory's encoder and head into the flat arrays the kernels read."""

    def pack(self, memory, x_rows, phi_rows, gate, scal):
        """x_rows / phi_rows: extra (weight, bias) blocks after the encoder's own rows."""
        cfg = memory.config
        inv_std = 1.0 / _np(memory.feature_std)
        mean = _np(memory.feature_mean)

        def fold(weight, bias):  # W ((x - mean) / std) + b  ->  W' x + b'
            w = weight * inv_std
            return w, bias - w @ mean

        R = memory.readout_dim
        head_in = _np(memory.head_in.weight)                          # (H, R + P)
        blocks = [fold(_np(memory.to_kvq.weight), _np(memory.to_kvq.bias)),
                  fold(_np(memory.feature_proj[0].weight), _np(memory.feature_proj[0].bias))]
        blocks += [fold(w, bias) for w, bias in x_rows]
        phi = [(head_in[:, R:], _np(memory.head_in.bias))] + phi_rows
        scale = (cfg.residual_scale * _np(memory.action_scale) if cfg.action_mode == 'residual'
                 else np.ones(cfg.action_dim, np.float32))
        segments = [np.concatenate([w for w, _ in blocks]), np.concatenate([b for _, b in blocks]),
                    _np(memory.feature_proj[1].weight), _np(memory.feature_proj[1].bias),
                    np.concatenate([w for w, _ in phi]), np.concatenate([b for _, b in phi]),
                    head_in[:, :R], _np(memory.head_out.weight), _np(memory.head_out.bias),
                    scale] + gate + [np.array([memory.feature_proj[1].eps] + scal)]
        self.params = np.concatenate([np.ravel(s).astype(np.float32) for s in segments])
        self.poffs = np.cumsum([0] + [s.size for s in segments]).astype(np.int64)
        self.residual = cfg.action_mode == 'residual'
        self.no_base = np.zeros(cfg.action_dim, np.float32)
        return len(segments[1]), len(segments[5]), head_in.shape[0]

    def allocate(self, sizes):
        self.woffs = np.cumsum([0] + sizes).astype(np.int64)
        self.work = np.zeros(self.woffs[-1], np.float32)

    def view(self, i):
        return self.work[self.woffs[i]:self.woffs[i + 1]]


class FastStep(_Compiled):
    def __init__(self, memory):
        import torch
        cfg = memory.config
        dk, dv, P, A = cfg.d_key, cfg.d_value, cfg.feature_proj_dim, cfg.action_dim
        nq, Hv = cfg.read_heads, cfg.value_hidden
        rule = memory.rule
        sees_state = getattr(rule, 'sees_state', False)
        sees_feat = getattr(rule, 'sees_features', False)
        x_rows, phi_rows = [], [(_np(memory.to_eta.weight), _np(memory.to_eta.bias))]
        gsw, gsb, gso = np.zeros((0, 3)), np.zeros(0), np.zeros(0)
        gfo, probe_q, probe_ctx = np.zeros(0), np.zeros(0), np.zeros(0)
        scal = [0.0, 0.0, 0.0]
        Hs = Hf = 0
        if sees_state:
            gsw, gsb = _np(rule.state_in.weight), _np(rule.state_in.bias)
            gso, Hs = _np(rule.state_out.weight)[0], gsw.shape[0]
            with torch.no_grad():
                probe_q = _np(torch.nn.functional.normalize(rule.probe_query, dim=-1))
                probe_ctx = _np(memory.head_context(rule.probe_phi))
            scal[0] = float(rule.state_out.bias.detach())
        if sees_feat:
            fw, fb = _np(rule.feat_in.weight), _np(rule.feat_in.bias)   # (Hf, P + F)
            Hf = fw.shape[0]
            x_rows.append((np.ascontiguousarray(fw[:, P:]), np.zeros(Hf, np.float32)))
            phi_rows.append((fw[:, :P], fb))
            gfo = _np(rule.feat_out.weight)[0]
            scal[1], scal[2] = float(rule.feat_out.bias.detach()), float(rule.feature_bound)
        value = [np.zeros(0)] * 4
        if Hv:
            value = [_np(memory.value_in.weight), _np(memory.value_in.bias),
                     _np(memory.value_out.weight), _np(memory.value_out.bias)]
        kqv_phi = (_np(memory.phi_to_kvq.weight) if cfg.nonlinear_keys else np.zeros(0))
        gate = [gsw, gsb, gso, gfo, probe_q, probe_ctx] + value + [kqv_phi]
        nz, npz, H = self.pack(memory, x_rows, phi_rows, gate, scal)
        n_reads = nq + (1 if Hv else 0)
        self.allocate([nz, P, npz, (1 + n_reads) * dk, 4 * nq * dv, dv, 4 * H, 4 * A, 2 * A,
                       (1 + n_reads + nq) * dv, dv, max(Hv, 1)])
        self.dims = np.array([dk, dv, P, H, Hs, Hf, A, int(sees_state), int(sees_feat), 0, nq,
                              Hv, int(cfg.nonlinear_keys),
                              int(cfg.action_change == 'distribution')], np.int64)
        self.actions = self.view(W_ACT).reshape(2, A)   # row 0: with the write, 1: without

    def __call__(self, W, b, x, base, decision=-1, threshold=0.5):
        """One step on the live state (W (dk, dv), b (dv,) float32 views, updated in place).
        ``decision``: -1 lets the learned gate decide against ``threshold``, 0/1 is the arm's
        own schedule. Returns (action (a fresh array), wrote, prob, surprise)."""
        dims = self.dims
        has_base = self.residual and base is not None
        dims[D_BASE] = has_base
        wrote, prob, surprise = _step(x, W, b, base if has_base else self.no_base, self.params,
                                      self.poffs, dims, self.work, self.woffs, decision,
                                      threshold)
        return self.actions[0 if wrote else 1].copy(), wrote, prob, surprise

    # The memory operation alone (what the step-cost benchmark times against the KV-cache):
    def read(self, W, b, kq, v, eta_w, eta_b):
        """Readouts without / with a write of (k, v) (kq: the key, then the queries), the error
        and the surprise."""
        nq = kq.shape[0] - 1
        r = self.view(W_R)[:2 * nq * v.shape[0]].reshape(2, -1)
        err = self.view(W_ERR)
        ro = self.view(W_RO)[:(1 + nq) * v.shape[0]].reshape(1 + nq, -1)
        return r, err, _read(W, b, kq, nq, v, eta_w, eta_b, r, err, ro)

    def write(self, W, b, k, err, eta_w, eta_b):
        _write(W, b, k, err, eta_w, eta_b)


# ---- the KV-cache baseline, with the same care -------------------------------------------------
K_Z, K_PHI, K_PZ, K_KQ, K_R, K_HID, K_RAW, K_ACT, K_SCORE = range(9)


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
    dk, dv = dims[D_DK], dims[D_DV]
    _encode(x, params, poffs, dims, work, woffs)
    z, pz = _seg(work, woffs, K_Z), _seg(work, woffs, K_PZ)
    kq = _seg(work, woffs, K_KQ).reshape((2, dk))
    for i in range(dk):
        keys[n, i] = kq[0, i]
    for j in range(dv):
        values[n, j] = z[2 * dk + j]
    scal = _seg(params, poffs, P_SCAL)                 # [ln_eps, scale, recency]
    r = _seg(work, woffs, K_R)
    _attend(keys, values, n + 1, kq[1], scal[1], scal[2], scores, r)
    raw, act = _seg(work, woffs, K_RAW), _seg(work, woffs, K_ACT)
    _head(params, poffs, dims, pz, r, _seg(work, woffs, K_HID), raw)
    _compose(params, poffs, dims, base, raw, act)


class FastKV(_Compiled):
    def __init__(self, memory):
        import torch
        cfg = memory.config
        dk, dv, P, A = cfg.d_key, cfg.d_value, cfg.feature_proj_dim, cfg.action_dim
        empty = np.zeros(0, np.float32)
        scal = [float(memory.log_scale.detach().exp()),
                float(torch.nn.functional.softplus(memory.recency.detach()))]
        nz, npz, H = self.pack(memory, [], [], [empty] * 11, scal)
        self.allocate([nz, P, npz, 2 * dk, dv, H, A, A])
        self.dims = np.array([dk, dv, P, H, 0, 0, A, 0, 0, 0, 1, 0, 0, 0], np.int64)
        self.scores = np.zeros(0, np.float32)

    def __call__(self, keys, values, n, x, base):
        """Append at row n of the (capacity, d) buffers (the caller grows them) and act."""
        if len(self.scores) < keys.shape[0]:
            self.scores = np.zeros(keys.shape[0], np.float32)
        dims = self.dims
        has_base = self.residual and base is not None
        dims[D_BASE] = has_base
        _kv_step(x, keys, values, n, base if has_base else self.no_base, self.params,
                 self.poffs, dims, self.work, self.woffs, self.scores)
        return self.view(K_ACT).copy()

    def attend(self, keys, values, n, q):
        """The memory operation alone: attention of q over the first n cached steps."""
        if len(self.scores) < n:
            self.scores = np.zeros(keys.shape[0], np.float32)
        out = self.view(K_R)
        scal = self.params[self.poffs[P_SCAL]:self.poffs[P_SCAL + 1]]
        _attend(keys, values, n, q, scal[1], scal[2], self.scores, out)
        return out
