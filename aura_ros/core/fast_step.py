"""The streaming (batch 1) step of a fast-weight memory, in numpy with fused weights.

Same math as ``FastWeightMemory.step`` (the torch reference, kept for tests), arranged for a
robot's control loop: feature normalisation folded into the first layers, every projection of
the features in one matmul, the phi projections in one more, all intermediate arrays
preallocated, and the write done in place (``W += eta_w k e^T`` through a preallocated outer
product). Built from the module's weights once (``FastStep(memory)``); the live state stays in
the memory's W and b tensors, which share their storage with the arrays used here.
"""
import math

import numpy as np
import torch

LOG_EPS = 1e-6
_gelu = torch.nn.functional.gelu


def gelu(x):
    """Exact (erf) GELU of a numpy array, through torch on the same memory (no copy in)."""
    return _gelu(torch.from_numpy(x)).numpy()


def _np(t):
    return t.detach().cpu().numpy().astype(np.float32)


class FastStep:
    def __init__(self, memory):
        cfg = memory.config
        self.cfg = cfg
        dk, dv = cfg.d_key, cfg.d_value
        inv_std = 1.0 / _np(memory.feature_std)
        mean = _np(memory.feature_mean)

        def fold(weight, bias):  # y = W ((x - mean) / std) + b  ->  x @ W'^T + b'
            w = _np(weight) * inv_std
            return w.T.copy(), _np(bias) - w @ mean

        blocks = [fold(memory.to_kvq.weight, memory.to_kvq.bias),
                  fold(memory.feature_proj[0].weight, memory.feature_proj[0].bias)]
        self.gated = cfg.kind == 'aura'
        P = cfg.feature_proj_dim
        if self.gated:  # the gate reads the normalised features directly too
            gw = _np(memory.gate_in.weight)
            blocks.append(fold(torch.from_numpy(gw[:, 2 + P:]), torch.zeros(gw.shape[0])))
        self.x_weight = np.ascontiguousarray(np.concatenate([w for w, _ in blocks], axis=1))
        self.x_bias = np.concatenate([b for _, b in blocks])
        self.dk, self.kqv, self.end = dk, 2 * dk + dv, 2 * dk + dv + P  # slices of x-proj
        self.ln_weight = _np(memory.feature_proj[1].weight)
        self.ln_bias = _np(memory.feature_proj[1].bias)
        self.ln_eps = memory.feature_proj[1].eps
        R = memory.readout_dim
        head_in = _np(memory.head_in.weight)                        # (H, R + P)
        phi_blocks = [head_in[:, R:].T, _np(memory.to_eta.weight).T]
        phi_bias = [_np(memory.head_in.bias), _np(memory.to_eta.bias)]
        if self.gated:
            phi_blocks.append(gw[:, 2:2 + P].T)
            phi_bias.append(_np(memory.gate_in.bias))
            self.gate_scalars = gw[:, :2].T.copy() * 0.25            # (2, Hg)
            self.gate_out_w = _np(memory.gate_out.weight)[0]
            self.gate_out_b = float(memory.gate_out.bias.detach())
        self.phi_weight = np.ascontiguousarray(np.concatenate(phi_blocks, axis=1))
        self.phi_bias = np.concatenate(phi_bias)
        self.H = head_in.shape[0]
        self.head_r = np.ascontiguousarray(head_in[:, :R].T)         # (R, H)
        self.head_out_w = np.ascontiguousarray(_np(memory.head_out.weight).T)  # (H, A)
        self.head_out_b = _np(memory.head_out.bias)
        self.residual = cfg.action_mode == 'residual'
        self.scale = cfg.residual_scale * _np(memory.action_scale)
        # preallocated work arrays
        self.z = np.empty(self.x_weight.shape[1], np.float32)
        self.pz = np.empty(self.phi_weight.shape[1], np.float32)
        self.actions = np.empty((2, self.head_out_w.shape[1]), np.float32)
        self.hidden_tmp = np.empty((2, self.H), np.float32)
        self.outer = np.empty((dk, dv), np.float32)
        self.kq = np.empty((2, dk), np.float32)
        self.r = np.empty((2, dv), np.float32)

    def __call__(self, W, b, x, base, decide):
        """One step on the live state (W (dk, dv), b (dv,) numpy views, updated in place).
        ``decide(prob) -> wrote`` applies the arm's write rule. Returns
        (action, wrote, prob, surprise)."""
        z = np.dot(x, self.x_weight, out=self.z)
        z += self.x_bias
        dk, kqv, end = self.dk, self.kqv, self.end
        kq = self.kq
        kq[0], kq[1] = z[:dk], z[dk:2 * dk]
        kq /= np.maximum(np.sqrt(np.einsum('ij,ij->i', kq, kq)), 1e-12)[:, None]
        v = z[2 * dk:kqv]
        phi = z[kqv:end]
        centred = phi - phi.sum() / phi.shape[0]
        var = float(centred @ centred) / phi.shape[0]
        phi = centred * (self.ln_weight / math.sqrt(var + self.ln_eps)) + self.ln_bias
        phi = gelu(phi)
        pz = np.dot(phi, self.phi_weight, out=self.pz)
        pz += self.phi_bias
        if self.gated:
            pz[self.H + 2:] += z[end:]            # the gate's normalised-feature part
        H = self.H
        head_ctx = pz[:H]
        eta_w, eta_b = 1.0 / (1.0 + np.exp(-pz[H:H + 2]))
        r, err, surprise = self.read(W, b, kq, v, eta_w, eta_b)
        np.dot(r, self.head_r, out=self.hidden_tmp)
        self.hidden_tmp += head_ctx
        actions = np.dot(gelu(self.hidden_tmp), self.head_out_w, out=self.actions)  # (2, A)
        actions += self.head_out_b                                      # rows: write, no write
        if self.residual and base is not None:
            actions *= self.scale
            actions += base
        if self.gated:
            delta = float(np.linalg.norm(actions[0] - actions[1]))
            scalars = np.log(np.array([surprise, delta], np.float32) + LOG_EPS)
            g = pz[H + 2:] + scalars @ self.gate_scalars
            prob = float(1.0 / (1.0 + np.exp(-(gelu(g) @ self.gate_out_w
                                               + self.gate_out_b))))
        else:
            prob = 1.0
        wrote = decide(prob)
        if wrote:   # a closed gate never touches the state
            self.write(W, b, kq[0], err, eta_w, eta_b)
        return actions[0 if wrote else 1].copy(), wrote, prob, surprise

    def read(self, W, b, kq, v, eta_w, eta_b):
        """The memory read: readouts without / with this step's write, the prediction error
        and the surprise. kq (2, dk) = [k; q], unit rows."""
        r = self.r
        np.dot(kq, W, out=r)                                            # [k W; q W]
        r += b
        err = v - r[0]                                                  # (dv,)
        surprise = float(err @ err) / err.shape[0]
        r[0] = r[1] + (eta_w * float(kq[0] @ kq[1]) + eta_b) * err      # r_w; r[1] = r_no
        return r, err, surprise

    def write(self, W, b, k, err, eta_w, eta_b):
        """The delta-rule write, in place: W += eta_w k e^T, b += eta_b e."""
        np.multiply.outer(eta_w * k, err, out=self.outer)
        W += self.outer
        b += eta_b * err
