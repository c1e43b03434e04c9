"""The streaming (batch 1) step of a fast-weight memory, compiled with numba.

Same math as ``FastWeightMemory.reference_step`` (the torch version, kept for the tests),
arranged for a robot's control loop: feature normalisation folded into the first layers, every
weight stored row-major (out, in) for contiguous inner loops, all work arrays allocated once,
the write done in place. One compiled call per step computes the candidate write and both
actions, decides (the learned gate's threshold, or a decision the arm's schedule made before
the call) and writes only if it decided so. The live state stays in the memory's W and b
tensors, which share storage with the arrays used here.
"""
import math

import numba
import numpy as np

LOG_EPS = 1e-6
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
def _matvec(w, bias, x, out):  # out = w @ x + bias, w (n, m) row-major
    for i in range(w.shape[0]):
        s = bias[i]
        for j in range(w.shape[1]):
            s += w[i, j] * x[j]
        out[i] = s


# Layout of the packed weights (``params``, offsets ``poffs``) and work arrays (``work``,
# offsets ``woffs``): segment i spans [offs[i], offs[i + 1]). Few arguments keep numba's
# per-call dispatch cheap.
P_WX, P_BX, P_LNW, P_LNB, P_WPHI, P_BPHI, P_WHR, P_WO, P_BO, P_SCALE, P_GSC, P_GOW, P_SCAL = \
    range(13)
W_Z, W_PHI, W_PZ, W_KQ, W_R, W_ERR, W_HID, W_ACT = range(8)


@numba.njit(cache=True, fastmath=True)
def _seg(buf, offs, i):
    return buf[offs[i]:offs[i + 1]]


# dims: [d_key, d_value, P, H, Hg, A, gated, has_base, decision]; decision -1: the learned
# gate decides, 0/1: the arm's schedule already did.
D_HAS_BASE, D_DECISION = 7, 8


@numba.njit(cache=True, fastmath=True)
def _step(x, W, b, base, params, poffs, dims, work, woffs):
    """One streaming step. Leaves the chosen action in ``work`` (W_ACT row 0 with the write,
    row 1 without), writes W, b in place iff it decides to; returns (wrote, prob, surprise)."""
    prob, surprise, eta_w, eta_b = _propose(x, W, b, base, params, poffs, dims, work, woffs)
    decision = dims[D_DECISION]
    wrote = prob > params[poffs[P_SCAL] + 2] if decision < 0 else decision == 1
    if wrote:   # a closed gate never touches the state
        _write(W, b, _seg(work, woffs, W_KQ)[:dims[0]], _seg(work, woffs, W_ERR), eta_w, eta_b)
    return wrote, prob, surprise


@numba.njit(cache=True, fastmath=True)
def _propose(x, W, b, base, params, poffs, dims, work, woffs):
    """Everything up to the write decision. Fills kq, err, actions (row 0: with the write,
    row 1: without) in ``work``; returns (prob, surprise, eta_w, eta_b)."""
    dk, dv, P, H, Hg, A, gated = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6]
    has_base = dims[D_HAS_BASE] == 1
    F = x.shape[0]
    z, phi, pz = _seg(work, woffs, W_Z), _seg(work, woffs, W_PHI), _seg(work, woffs, W_PZ)
    kq = _seg(work, woffs, W_KQ).reshape((2, dk))
    r = _seg(work, woffs, W_R).reshape((2, dv))
    err = _seg(work, woffs, W_ERR)
    hidden = _seg(work, woffs, W_HID).reshape((2, H))
    actions = _seg(work, woffs, W_ACT).reshape((2, A))
    scal = _seg(params, poffs, P_SCAL)             # [ln_eps, gate_out_bias, threshold]
    _matvec(_seg(params, poffs, P_WX).reshape((z.shape[0], F)), _seg(params, poffs, P_BX), x,
            z)
    for row in range(2):                           # unit key and query
        n = 0.0
        for i in range(dk):
            kq[row, i] = z[row * dk + i]
            n += kq[row, i] * kq[row, i]
        n = max(math.sqrt(n), 1e-12)
        for i in range(dk):
            kq[row, i] /= n
    off = 2 * dk + dv                              # LayerNorm + GELU of the phi projection
    mean = 0.0
    for i in range(P):
        mean += z[off + i]
    mean /= P
    var = 0.0
    for i in range(P):
        d = z[off + i] - mean
        var += d * d
    inv = 1.0 / math.sqrt(var / P + scal[0])
    ln_w, ln_b = _seg(params, poffs, P_LNW), _seg(params, poffs, P_LNB)
    for i in range(P):
        phi[i] = _gelu((z[off + i] - mean) * inv * ln_w[i] + ln_b[i])
    w_phi = _seg(params, poffs, P_WPHI).reshape((pz.shape[0], P))
    _matvec(w_phi, _seg(params, poffs, P_BPHI), phi, pz)
    eta_w = 1.0 / (1.0 + math.exp(-pz[H]))         # pz: [head ctx (H), eta (2), gate ctx]
    eta_b = 1.0 / (1.0 + math.exp(-pz[H + 1]))
    surprise = _read(W, b, kq, z[2 * dk:2 * dk + dv], eta_w, eta_b, r, err)
    whr = _seg(params, poffs, P_WHR).reshape((H, dv))
    wo = _seg(params, poffs, P_WO).reshape((A, H))
    bo, scale = _seg(params, poffs, P_BO), _seg(params, poffs, P_SCALE)
    for row in range(2):                           # the action head on both readouts
        for h in range(H):
            s = pz[h]
            for j in range(dv):
                s += whr[h, j] * r[row, j]
            hidden[row, h] = _gelu(s)
        for a in range(A):
            s = bo[a]
            for h in range(H):
                s += wo[a, h] * hidden[row, h]
            actions[row, a] = base[a] + scale[a] * s if has_base else s
    if not gated:
        return 1.0, surprise, eta_w, eta_b
    delta = 0.0                                    # action-relevant surprise
    for a in range(A):
        d = actions[0, a] - actions[1, a]
        delta += d * d
    ls = math.log(surprise + LOG_EPS)
    ld = math.log(math.sqrt(delta) + LOG_EPS)
    gsc = _seg(params, poffs, P_GSC).reshape((Hg, 2))
    gow = _seg(params, poffs, P_GOW)
    logit = scal[1]
    for h in range(Hg):
        logit += gow[h] * _gelu(pz[H + 2 + h] + z[off + P + h] + gsc[h, 0] * ls
                                + gsc[h, 1] * ld)
    return 1.0 / (1.0 + math.exp(-logit)), surprise, eta_w, eta_b


@numba.njit(cache=True, fastmath=True)
def _read(W, b, kq, v, eta_w, eta_b, r, err):
    """The memory read: r = [k W + b; q W + b], err = v - (k W + b), then r[0] becomes the
    readout had (k, v) been written (r[1] stays the readout without). Returns the surprise."""
    dk, dv = W.shape
    for row in range(2):
        for j in range(dv):
            s = b[j]
            for i in range(dk):
                s += kq[row, i] * W[i, j]
            r[row, j] = s
    kdotq = 0.0
    for i in range(dk):
        kdotq += kq[0, i] * kq[1, i]
    c = eta_w * kdotq + eta_b
    surprise = 0.0
    for j in range(dv):
        err[j] = v[j] - r[0, j]
        surprise += err[j] * err[j]
        r[0, j] = r[1, j] + c * err[j]
    return surprise / dv


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


class FastStep:
    def __init__(self, memory):
        cfg = memory.config
        dk, dv, P = cfg.d_key, cfg.d_value, cfg.feature_proj_dim
        gated = cfg.kind == 'aura'
        inv_std = 1.0 / _np(memory.feature_std)
        mean = _np(memory.feature_mean)

        def fold(weight, bias):  # W ((x - mean) / std) + b  ->  W' x + b'
            w = weight * inv_std
            return w, bias - w @ mean

        blocks = [fold(_np(memory.to_kvq.weight), _np(memory.to_kvq.bias)),
                  fold(_np(memory.feature_proj[0].weight), _np(memory.feature_proj[0].bias))]
        R = memory.readout_dim
        head_in = _np(memory.head_in.weight)                          # (H, R + P)
        phi_rows = [head_in[:, R:], _np(memory.to_eta.weight)]
        phi_bias = [_np(memory.head_in.bias), _np(memory.to_eta.bias)]
        Hg, gsc, gow, gob = 1, np.zeros((1, 2), np.float32), np.zeros(1, np.float32), 0.0
        if gated:
            gw = _np(memory.gate_in.weight)                           # (Hg, 2 + P + F)
            Hg = gw.shape[0]
            blocks.append(fold(np.ascontiguousarray(gw[:, 2 + P:]), np.zeros(Hg, np.float32)))
            phi_rows.append(gw[:, 2:2 + P])
            phi_bias.append(_np(memory.gate_in.bias))
            gsc, gow = 0.25 * gw[:, :2], _np(memory.gate_out.weight)[0]
            gob = float(memory.gate_out.bias.detach())
        H = head_in.shape[0]
        wo = _np(memory.head_out.weight)
        A = wo.shape[0]
        segments = [np.concatenate([w for w, _ in blocks]), np.concatenate([b for _, b in blocks]),
                    _np(memory.feature_proj[1].weight), _np(memory.feature_proj[1].bias),
                    np.concatenate(phi_rows), np.concatenate(phi_bias), head_in[:, :R], wo,
                    _np(memory.head_out.bias), cfg.residual_scale * _np(memory.action_scale),
                    gsc, gow, np.array([memory.feature_proj[1].eps, gob, cfg.gate_threshold])]
        work = [len(segments[1]), P, len(segments[5]), 2 * dk, 2 * dv, dv, 2 * H, 2 * A]
        self.params = np.concatenate([np.ravel(s).astype(np.float32) for s in segments])
        self.poffs = np.cumsum([0] + [s.size for s in segments]).astype(np.int64)
        self.woffs = np.cumsum([0] + work).astype(np.int64)
        self.work = np.zeros(self.woffs[-1], np.float32)
        self.dims = np.array([dk, dv, P, H, Hg, A, int(gated), 0, -1], np.int64)
        self.residual = cfg.action_mode == 'residual'
        self.no_base = np.zeros(A, np.float32)

        self.actions = self.view(W_ACT).reshape(2, A)   # row 0: with the write, 1: without

    def view(self, i):
        return self.work[self.woffs[i]:self.woffs[i + 1]]

    def __call__(self, W, b, x, base, decision=-1):
        """One step on the live state (W (dk, dv), b (dv,) float32 views, updated in place).
        ``decision``: -1 lets the learned gate decide, 0/1 is the arm's own schedule.
        Returns (action (a fresh array), wrote, prob, surprise)."""
        dims = self.dims
        has_base = self.residual and base is not None
        dims[D_HAS_BASE], dims[D_DECISION] = has_base, decision
        wrote, prob, surprise = _step(x, W, b, base if has_base else self.no_base, self.params,
                                      self.poffs, dims, self.work, self.woffs)
        return self.actions[0 if wrote else 1].copy(), wrote, prob, surprise

    # The memory operation alone (what the step-cost benchmark times against the KV-cache):
    def read(self, W, b, kq, v, eta_w, eta_b):
        """Readouts without / with a write of (k, v), the error and the surprise."""
        r, err = self.view(W_R).reshape(2, -1), self.view(W_ERR)
        return r, err, _read(W, b, kq, v, eta_w, eta_b, r, err)

    def write(self, W, b, k, err, eta_w, eta_b):
        _write(W, b, k, err, eta_w, eta_b)

