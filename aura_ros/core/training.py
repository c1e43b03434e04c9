"""Training any memory arm on sequences: closed-loop action error plus, for the gated arms,
the write objective.

AURA's loss per batch (B episodes, T steps, m = supervised steps):

    L = action_error(a_t, y_t)                                     # closed-loop action error
      - ib_weight * mean_t[ p_t * sg(l(a_t^nowrite) - l(a_t^write)) ]  # reward writes that
                                                                    # improve the next action,
                                                                    # penalise ones that hurt
      + ramp * (write_cost * rate + sparsity_weight * relu(rate - target_write_rate))

with p_t the gate probability, rate = mean p_t and sg = stop-gradient. The recipe prices each
write (``write_cost``) and has no rate cap (``sparsity_weight`` 0, the AuraConfig default since
issue 31): a cap presses on every step alike, so it shut gates uniformly before the write gain
could tell the steps that matter, and once shut no write paid any more (a closed gate for good;
bench/notes.md, "The rate cap closes the gate"). l is the task loss
(``ib_gain='loss'``) or, for classification, 1 - correct (``'correct'``: a write that only makes
a right action more confident gains nothing); ``ib_horizon`` sets which later actions a write
is judged on. Schedule: a warm-up in which the gate rests and the memory learns writing every
step (``'open'``) or each step with chance 1/2 (``'random'``: the head also learns to act on an
empty or sparse memory, so the first write of an episode is not worth making for its own sake;
the recordings' recipe); the old ``'soft'`` warm-up let the gate saturate open before it had
anything to read; then a straight-through binary gate while the sparsity weight ramps up; the
last stretch trains exactly what runs at inference. Every learned gate (``aura`` and its
ablations) gets this same objective. ``skip_budget`` gets only a budget loss on its write rate
(no action-surprise signal); the other arms get the action error alone.
"""
import warnings
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from aura_ros.core.write_rules import RESTING

WARMUP_GATES = ('open', 'random', 'soft')
# A learned gate has collapsed when it (almost) never writes or writes on most steps.
GATE_CLOSED_BELOW = 0.1      # writes per episode
GATE_OPEN_ABOVE = 0.5        # share of steps written
FINAL_STRETCH = 0.1          # the share of the last training steps a gate is judged on


def gate_status(writes_per_episode, write_fraction):
    """'closed', 'always_open' or 'selective' (the thresholds above)."""
    if writes_per_episode < GATE_CLOSED_BELOW:
        return 'closed'
    if write_fraction > GATE_OPEN_ABOVE:
        return 'always_open'
    return 'selective'


@dataclass
class TrainSchedule:
    steps: int = 2000
    lr: float = 3e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    warmup_frac: float = 0.5     # warm-up: no sparsity pressure, gate as ``warmup_gate``
    ramp_frac: float = 0.25      # sparsity weight 0 -> 1 (straight-through gate)
    warmup_gate: str = 'open'    # 'open': the memory learns writing every step (the gate is
                                 # not trained yet); 'random': writing each step with chance
                                 # 1/2 (the head learns to read any memory, the empty one
                                 # too); 'soft': the gate's probability scales each write
    feature_noise: float = 0.0   # Gaussian noise added to each batch's features, in units of
                                 # the memory's feature std: on a finite set of noisy
                                 # demonstrations it keeps the memory from memorising each
                                 # episode's noise (fresh episodes every batch: 0)

    def __post_init__(self):
        if self.warmup_gate not in WARMUP_GATES:
            raise ValueError(f'TrainSchedule.warmup_gate must be one of {WARMUP_GATES}, got '
                             f'{self.warmup_gate!r}')


@dataclass
class Batch:
    features: torch.Tensor               # (B, T, F)
    targets: torch.Tensor                # (B, T) class ids (-1 = no target) or (B, T, A)
    base_actions: torch.Tensor | None = None   # (B, T, A) frozen policy's actions
    mask: torch.Tensor | None = None     # (B, T) bool, steps with a target (regression)
    writes: torch.Tensor | None = None   # (B, T) forced writes (an arm with a fixed schedule)


def per_step_loss(actions, batch: Batch, loss_kind, scale=None):
    """(B, T) loss of each step and the (B, T) mask of supervised steps. Regression errors are
    measured in units of ``scale`` (A,), e.g. the action std."""
    if loss_kind == 'ce':
        mask = batch.targets >= 0
        loss = F.cross_entropy(actions.flatten(0, 1), batch.targets.clamp_min(0).flatten(),
                               reduction='none').view(mask.shape)
    else:
        mask = batch.mask if batch.mask is not None else torch.ones(actions.shape[:2], dtype=bool)
        err = actions - batch.targets
        loss = (err if scale is None else err / scale).pow(2).mean(-1)
    return loss * mask, mask


def per_step_error(actions, batch: Batch, loss_kind, scale, gain):
    """What a write is scored on: the task loss (gain 'loss'), or for classification 1 -
    correct (gain 'correct': only a write that makes the action right counts)."""
    if gain == 'correct' and loss_kind == 'ce':
        mask = batch.targets >= 0
        return (actions.argmax(-1) != batch.targets).float() * mask, mask
    return per_step_loss(actions, batch, loss_kind, scale)


def write_gain(out, batch: Batch, loss_kind, scale, horizon, samples=12, generator=None,
               gain='loss'):
    """(B, T) how much each step's write lowers the action error: of its own action
    (horizon 1), or summed over the next ``horizon`` actions (0: the rest of the episode).
    For horizons > 1 the gain is computed for ``samples`` random steps per batch and scaled
    by T / samples (an unbiased estimate; the full (T x T) counterfactual is costly)."""
    if horizon == 1:
        return (per_step_error(out.actions_nowrite, batch, loss_kind, scale, gain)[0]
                - per_step_error(out.actions_write, batch, loss_kind, scale, gain)[0])
    B, T = out.writes.shape
    steps = torch.randperm(T, generator=generator)[:samples].sort().values
    K = len(steps)
    with_write, without = out.future_actions(steps)                   # (B, K, T', A)

    def flat(x):  # (B, ...) -> (B * K, ...) : one row per writing step
        return x[:, None].expand(B, K, *x.shape[1:]).reshape(B * K, *x.shape[1:])

    rows = Batch(features=None, targets=flat(batch.targets),
                 mask=None if batch.mask is None else flat(batch.mask))
    l_with = per_step_error(with_write.reshape(B * K, T, -1), rows, loss_kind, scale, gain)[0]
    l_without = per_step_error(without.reshape(B * K, T, -1), rows, loss_kind, scale, gain)[0]
    t = torch.arange(T)
    later = t[None, :] >= steps[:, None]                              # t' >= t
    if horizon:
        later &= t[None, :] < steps[:, None] + horizon
    gain = torch.zeros(B, T)
    gain[:, steps] = ((l_without - l_with).view(B, K, T) * later).sum(-1) * (T / K)
    return gain


def gate_mode_at(step, schedule: TrainSchedule):
    if step < schedule.warmup_frac * schedule.steps:
        return schedule.warmup_gate
    return 'straight_through'


def sparsity_ramp(step, schedule: TrainSchedule):
    start = schedule.warmup_frac * schedule.steps
    return min(1.0, max(0.0, (step - start) / max(1.0, schedule.ramp_frac * schedule.steps)))


def memory_loss(model, batch: Batch, loss_kind, step, schedule: TrainSchedule, generator=None):
    """Loss of one batch and a dict of logged numbers."""
    cfg = model.config
    mode = gate_mode_at(step, schedule) if cfg.is_gated else (
        'straight_through' if cfg.kind == 'skip_budget' else 'hard')
    forced = {} if batch.writes is None else {'forced_writes': batch.writes}
    out = model.forward_sequence(batch.features, batch.base_actions, gate_mode=mode,
                                 generator=generator, **forced)
    scale = model.action_scale
    step_loss, mask = per_step_loss(out.actions, batch, loss_kind, scale)
    n = mask.sum().clamp_min(1)
    loss = step_loss.sum() / n
    writes = out.writes.detach()
    if batch.mask is not None:                 # padded episodes: their real steps only
        writes = writes * batch.mask
    steps = batch.mask.sum() if batch.mask is not None else writes.numel()
    logs = {'action_loss': float(loss.detach()), 'write_rate': float(writes.sum() / steps),
            'writes_per_episode': float(writes.sum(1).mean())}
    if cfg.is_gated and mode not in RESTING:   # aura and its ablations: the same write objective
        with torch.no_grad():
            gain = write_gain(out, batch, loss_kind, scale, cfg.ib_horizon, generator=generator,
                              gain=cfg.ib_gain)
        ib = -(out.write_prob * gain).sum() / n
        rate = out.write_prob.mean()
        excess = F.relu(rate - cfg.target_write_rate)
        sparsity = cfg.write_cost * rate + cfg.sparsity_weight * excess
        loss = loss + cfg.ib_weight * ib + sparsity_ramp(step, schedule) * sparsity
        logs.update(ib=ib.detach().item(), gate_prob=rate.detach().item())
    elif cfg.kind == 'skip_budget':  # budget only: pull the write rate onto the budget
        rate = out.write_prob.mean()
        loss = loss + cfg.budget_weight * (rate - cfg.write_rate).abs()
    return loss, logs


def train_memory(model, sample_batch, loss_kind='ce', schedule: TrainSchedule = None,
                 seed=0, desc='train', progress=True):
    """Train ``model`` on batches from ``sample_batch(step) -> Batch``; returns the last logs.
    A learned gate is judged on the last ``FINAL_STRETCH`` of the steps (its writes there, as
    at inference): the logs say ``gate_status`` ('closed', 'always_open', 'selective') with
    ``final_writes_per_episode`` and ``final_write_rate``, and a collapsed gate is warned
    about (``warnings.warn``: the caller's report says it too)."""
    schedule = schedule or TrainSchedule()
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    lr_at = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=schedule.lr,
                                                total_steps=schedule.steps, pct_start=0.05)
    model.train()
    logs, final = {}, []
    judged_from = schedule.steps - max(1, int(FINAL_STRETCH * schedule.steps))
    bar = tqdm(range(schedule.steps), desc=desc, disable=not progress, leave=False,
               mininterval=2.0)
    for step in bar:
        batch = sample_batch(step)
        if schedule.feature_noise:
            noise = torch.randn(batch.features.shape, generator=generator)
            batch = replace(batch, features=batch.features
                            + schedule.feature_noise * model.feature_std * noise)
        loss, logs = memory_loss(model, batch, loss_kind, step, schedule, generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(f'{desc}: the training loss is not finite at step {step} '
                                     f'of {schedule.steps} ({logs}); nothing was saved')
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, schedule.grad_clip)
        opt.step()
        lr_at.step()
        if step >= judged_from:
            final.append((logs['writes_per_episode'], logs['write_rate']))
        if step % 20 == 0:
            bar.set_postfix({k: f'{v:.3f}' for k, v in logs.items()})
    model.eval()
    if model.config.is_gated and final:
        per_episode, rate = (sum(v) / len(final) for v in zip(*final))
        status = gate_status(per_episode, rate)
        logs.update(gate_status=status, final_writes_per_episode=per_episode,
                    final_write_rate=rate)
        if status != 'selective':
            warnings.warn(f'{desc}: the {model.config.kind} gate is {status} at the end of '
                          f'training ({per_episode:.2f} writes per episode, {100 * rate:.0f}% '
                          f'of steps, over the last {len(final)} steps; collapsed: fewer than '
                          f'{GATE_CLOSED_BELOW} or more than {100 * GATE_OPEN_ABOVE:.0f}%)',
                          stacklevel=2)
    return logs
