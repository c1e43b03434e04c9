"""The streaming (batch 1) step of a fast-weight memory, compiled with numba.

Same math as ``FastWeightMemory.reference_step`` (the torch version, kept for the tests),
arranged for a robot's control loop: feature normalisation folded into the first layers, every
weight stored row-major (out, in) for contiguous inner loops, all work arrays allocated once,
the write done in place. One call computes the candidate write and both actions (``propose``);
the arm's write rule runs in Python (gate threshold or schedule); a second call writes
(``write``) only if it said so. The live state stays in the memory's W and b tensors, which
share storage with the arrays used here.
"""
import math

import numba
import numpy as np
import torch

LOG_EPS = 1e-6
SQRT1_2 = 1.0 / math.sqrt(2.0)


@numba.njit(cache=True, fastmath=True)
def _gelu(x):  # exact (erf) GELU, as torch's default
    return 0.5 * x * (1.0 + math.erf(x * SQRT1_2))


@numba.njit(cache=True, fastmath=True)
def _matvec(w, bias, x, out):  # out = w @ x + bias, w (n, m) row-major
    for i in range(w.shape[0]):
        s = bias[i]
        for j in range(w.shape[1]):
            s += w[i, j] * x[j]
        out[i] = s


@numba.njit(cache=True, fastmath=True)
def _propose(x, W, b, base, has_base, gated, dk, dv, P, H, Hg,
             wx, bx, ln_w, ln_b, ln_eps, wphi, bphi, whr, wo, bo, scale, gsc, gow, gob,
             z, phi, pz, kq, r, err, hidden, actions, g):
    """Everything up to the write decision. Fills kq, err, actions (row 0: with the write,
    row 1: without); returns (prob, surprise, eta_w, eta_b)."""
    _matvec(wx, bx, x, z)                          # [k, q, v, phi_pre, gate_x]
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
    inv = 1.0 / math.sqrt(var / P + ln_eps)
    for i in range(P):
        phi[i] = _gelu((z[off + i] - mean) * inv * ln_w[i] + ln_b[i])
    _matvec(wphi, bphi, phi, pz)                   # [head ctx (H), eta (2), gate ctx (Hg)]
    eta_w = 1.0 / (1.0 + math.exp(-pz[H]))
    eta_b = 1.0 / (1.0 + math.exp(-pz[H + 1]))
    surprise = _read(W, b, kq, z[2 * dk:2 * dk + dv], eta_w, eta_b, r, err)
    A = actions.shape[1]
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
    logit = gob
    for h in range(Hg):
        g[h] = _gelu(pz[H + 2 + h] + z[off + P + h] + gsc[h, 0] * ls + gsc[h, 1] * ld)
        logit += gow[h] * g[h]
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
        self.gated = cfg.kind == 'aura'
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
        Hg = 1
        gsc, gow, gob = np.zeros((1, 2), np.float32), np.zeros(1, np.float32), 0.0
        if self.gated:
            gw = _np(memory.gate_in.weight)                           # (Hg, 2 + P + F)
            Hg = gw.shape[0]
            blocks.append(fold(np.ascontiguousarray(gw[:, 2 + P:]), np.zeros(Hg, np.float32)))
            phi_rows.append(gw[:, 2:2 + P])
            phi_bias.append(_np(memory.gate_in.bias))
            gsc = np.ascontiguousarray(0.25 * gw[:, :2])
            gow = _np(memory.gate_out.weight)[0]
            gob = float(memory.gate_out.bias.detach())
        self.H = head_in.shape[0]
        wo = _np(memory.head_out.weight)
        self.weights = (
            np.ascontiguousarray(np.concatenate([w for w, _ in blocks])),
            np.concatenate([b for _, b in blocks]).astype(np.float32),
            _np(memory.feature_proj[1].weight), _np(memory.feature_proj[1].bias),
            float(memory.feature_proj[1].eps),
            np.ascontiguousarray(np.concatenate(phi_rows)),
            np.concatenate(phi_bias).astype(np.float32),
            np.ascontiguousarray(head_in[:, :R]), wo, _np(memory.head_out.bias),
            (cfg.residual_scale * _np(memory.action_scale)).astype(np.float32),
            gsc, gow, gob)
        self.dims = (dk, dv, P, self.H, Hg)
        A = wo.shape[0]
        self.residual = cfg.action_mode == 'residual'
        self.scratch = (np.empty(self.weights[0].shape[0], np.float32),  # z
                        np.empty(P, np.float32), np.empty(self.weights[5].shape[0], np.float32),
                        np.empty((2, dk), np.float32), np.empty((2, dv), np.float32),
                        np.empty(dv, np.float32), np.empty((2, self.H), np.float32),
                        np.empty((2, A), np.float32), np.empty(Hg, np.float32))
        self.no_base = np.zeros(A, np.float32)

    def __call__(self, W, b, x, base, decide):
        """One step on the live state (W (dk, dv), b (dv,) float32 views, updated in place).
        ``decide(prob) -> wrote`` applies the arm's write rule. Returns
        (action, wrote, prob, surprise)."""
        has_base = self.residual and base is not None
        prob, surprise, eta_w, eta_b = _propose(
            x, W, b, base if has_base else self.no_base, has_base, self.gated, *self.dims,
            *self.weights, *self.scratch)
        wrote = decide(prob)
        kq, err, actions = self.scratch[3], self.scratch[5], self.scratch[7]
        if wrote:   # a closed gate never touches the state
            _write(W, b, kq[0], err, eta_w, eta_b)
        return actions[0 if wrote else 1].copy(), wrote, prob, surprise

    # The memory operation alone (what the step-cost benchmark times against the KV-cache):
    def read(self, W, b, kq, v, eta_w, eta_b):
        """Readouts without / with a write of (k, v), the error and the surprise."""
        r, err = self.scratch[4], self.scratch[5]
        return r, err, _read(W, b, kq, v, eta_w, eta_b, r, err)

    def write(self, W, b, k, err, eta_w, eta_b):
        _write(W, b, k, err, eta_w, eta_b)


__all__ = ['FastStep', 'torch']
