"""Synthetic 8-way memory task (chance 0.125): remember the most recent real event.

An episode is N observation vectors x_0 .. x_{N-1} of width 24:

    channels 0-15  content: amp * prototype[c] + content_noise * eps  at an item step,
                   content_noise * eps elsewhere (prototypes: 8 fixed unit vectors in R^16,
                   drawn once from TASK_SEED, the same for every run)
    channel 16     flag: +1 for a real event or a repeat, -1 for a distractor, 0 elsewhere;
                   plus flag_noise * eps on every step
    channel 17     query: 1 on the last step, 0 elsewhere
    channels 18-23 pure N(0, 1) noise

Items are placed at distinct random steps in [0, N-2]; the last step is the query (no item).
  * event:      a real event of a class different from the current answer -> the answer changes
  * repeat:     a real event of the current answer's class: memory already holds it, so a good
                memory need not write (the first real item is always an event, never a repeat)
  * distractor: flag -1, content of a class different from the current answer at that time;
                it must not change the answer
Label at step t: the class of the most recent real item (event or repeat) at or before t, -1
(ignored) before the first one. The score is accuracy at the query step; the per-step labels are
the closed-loop "action" targets every arm is trained on.

Named configs (``CONFIGS``): ``easy`` (N=64, 2-4 events, 0-2 repeats, 2-4 distractors, little
noise: near saturation) and ``hard`` (N=128, 2-5 events, 1-3 repeats, 8-14 distractors, heavy
flag and content noise: even the hand-coded reader that knows the generator is far from 1.0).
``oracle_reader_accuracy`` measures that ceiling; it is reported next to every benchmark.
"""
from dataclasses import asdict, dataclass

import numpy as np
import torch

TASK_SEED = 20260602
N_CLASSES = 8
CONTENT_DIM = 16
NOISE_DIM = 6
OBS_DIM = CONTENT_DIM + 2 + NOISE_DIM  # 24
FLAG, QUERY = CONTENT_DIM, CONTENT_DIM + 1
# Item types per step (the `kinds` array).
BACKGROUND, EVENT, REPEAT, DISTRACTOR, QUERY_STEP = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class SyntheticTaskConfig:
    horizon: int
    events: tuple          # (min, max) real events that change the answer
    repeats: tuple         # (min, max) real events that repeat the current answer
    distractors: tuple     # (min, max) flag -1 items
    content_noise: float
    flag_noise: float
    amplitude: tuple = (0.8, 1.2)

    def __post_init__(self):
        if self.horizon < 4:
            raise ValueError('horizon must be >= 4')
        for name in ('events', 'repeats', 'distractors', 'amplitude'):
            lo, hi = getattr(self, name)
            if lo > hi or lo < 0:
                raise ValueError(f'{name} must be (min, max) with 0 <= min <= max')
        if self.events[0] < 1:
            raise ValueError('an episode needs at least one event')
        if self.events[1] + self.repeats[1] + self.distractors[1] > self.horizon - 1:
            raise ValueError('more items than steps before the query')

    def to_dict(self):
        return asdict(self)


CONFIGS = {
    'easy': SyntheticTaskConfig(horizon=64, events=(2, 4), repeats=(0, 2), distractors=(2, 4),
                                content_noise=0.15, flag_noise=0.15),
    'hard': SyntheticTaskConfig(horizon=128, events=(2, 5), repeats=(1, 3),
                                distractors=(8, 14), content_noise=0.30, flag_noise=0.40),
}


def prototypes():
    """The 8 class prototypes (8, 16), unit norm, fixed for the task."""
    protos = np.random.default_rng(TASK_SEED).standard_normal((N_CLASSES, CONTENT_DIM))
    return protos / np.linalg.norm(protos, axis=1, keepdims=True)


@dataclass
class Episodes:
    obs: torch.Tensor     # (B, N, 24) float32
    labels: torch.Tensor  # (B, N) int64, -1 before the first real event
    kinds: torch.Tensor   # (B, N) int64 item type per step (BACKGROUND, EVENT, ...)

    @property
    def answer(self):
        return self.labels[:, -1]


def sample_episodes(config: SyntheticTaskConfig, batch: int, rng: np.random.Generator):
    """``batch`` independent episodes of ``config``."""
    N, protos = config.horizon, prototypes()
    obs = np.zeros((batch, N, OBS_DIM), np.float32)
    labels = np.full((batch, N), -1, np.int64)
    kinds = np.zeros((batch, N), np.int64)
    for i in range(batch):
        n_e, n_r, n_d = (rng.integers(lo, hi + 1) for lo, hi in
                         (config.events, config.repeats, config.distractors))
        types = rng.permutation([EVENT] * n_e + [REPEAT] * n_r + [DISTRACTOR] * n_d)
        first_real = np.flatnonzero(types != DISTRACTOR)[0]
        if types[first_real] == REPEAT:  # nothing to repeat yet: swap with the first event
            j = np.flatnonzero(types == EVENT)[0]
            types[first_real], types[j] = EVENT, REPEAT
        steps = np.sort(rng.choice(N - 1, size=len(types), replace=False))
        answer = -1
        for step, kind in zip(steps, types):
            others = [c for c in range(N_CLASSES) if c != answer]
            cls = answer if kind == REPEAT else rng.choice(others)
            amp = rng.uniform(*config.amplitude)
            obs[i, step, :CONTENT_DIM] = amp * protos[cls]
            obs[i, step, FLAG] = -1.0 if kind == DISTRACTOR else 1.0
            kinds[i, step] = kind
            if kind != DISTRACTOR:
                answer = cls
                labels[i, step] = cls
        for t in range(1, N):  # carry the answer forward
            if labels[i, t] < 0:
                labels[i, t] = labels[i, t - 1]
    kinds[:, -1] = QUERY_STEP
    obs[:, -1, QUERY] = 1.0
    obs[:, :, :CONTENT_DIM] += config.content_noise * rng.standard_normal(
        (batch, N, CONTENT_DIM), dtype=np.float32)
    obs[:, :, FLAG] += config.flag_noise * rng.standard_normal((batch, N), dtype=np.float32)
    obs[:, :, QUERY + 1:] = rng.standard_normal((batch, N, NOISE_DIM), dtype=np.float32)
    return Episodes(torch.from_numpy(obs), torch.from_numpy(labels), torch.from_numpy(kinds))


def _reader_predictions(episodes: Episodes, flag_threshold, size_threshold):
    obs = episodes.obs.numpy()
    scores = obs[..., :CONTENT_DIM] @ prototypes().T                    # (B, N, 8)
    is_event = (obs[..., FLAG] > flag_threshold) & (scores.max(-1) > size_threshold)
    is_event[:, -1] = False                                             # the query step
    cls = scores.argmax(-1)
    last = np.where(is_event.any(1), obs.shape[1] - 1 - np.argmax(is_event[:, ::-1], axis=1), -1)
    return np.where(last >= 0, cls[np.arange(len(obs)), np.maximum(last, 0)], -1)


def oracle_reader_accuracy(episodes: Episodes, calibration: Episodes):
    """A hand-coded reader that knows the generator: a step is a real event when its flag
    exceeds a threshold and its best prototype match exceeds another; its class is the nearest
    prototype; the answer is the class of the last such step. Both thresholds are picked on
    ``calibration`` episodes (a separate sample). An estimate of the task's ceiling.
    """
    grid = [(f, s) for f in np.linspace(0.0, 1.2, 13) for s in np.linspace(0.0, 1.0, 11)]
    answer = calibration.answer.numpy()
    best = max(grid, key=lambda fs: (_reader_predictions(calibration, *fs) == answer).mean())
    return float((_reader_predictions(episodes, *best) == episodes.answer.numpy()).mean())
