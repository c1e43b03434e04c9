"""The synthetic 8-way tasks: labels, item kinds, chance level, the reader's ceiling, and -- for
the headline context task -- that no single observation tells an item's kind (no label
channel), while the legacy flag task fails that same check."""
import dataclasses

import numpy as np
import pytest
import torch

from aura_ros.sim.synthetic import (
    CONFIGS,
    CONTENT_DIM,
    CONTEXT,
    DISTRACTOR,
    EVENT,
    FLAG,
    N_CLASSES,
    QUERY_STEP,
    REPEAT,
    VARIANTS,
    SyntheticTaskConfig,
    oracle_reader_accuracy,
    prototypes,
    sample_episodes,
)


@pytest.mark.parametrize('name', list(CONFIGS))
def test_shapes_and_item_counts(name):
    cfg = CONFIGS[name]
    eps = sample_episodes(cfg, 64, np.random.default_rng(0))
    assert eps.obs.shape == (64, cfg.horizon, cfg.obs_dim) and eps.obs.dtype == torch.float32
    for kinds in eps.kinds:
        n = {k: int((kinds == k).sum()) for k in (EVENT, REPEAT, DISTRACTOR, CONTEXT)}
        assert cfg.events[0] <= n[EVENT] <= cfg.events[1]
        assert cfg.repeats[0] <= n[REPEAT] <= cfg.repeats[1]
        assert cfg.distractors[0] <= n[DISTRACTOR] <= cfg.distractors[1]
        assert n[CONTEXT] == (0 if cfg.label_channel else 1)
        assert kinds[-1] == QUERY_STEP
    q = cfg.query_channel
    perm = cfg.channel_permutation()
    q = q if perm is None else perm[q]                   # a variant shows it elsewhere
    assert torch.all(eps.obs[:, -1, q] == 1) and torch.all(eps.obs[:, :-1, q] == 0)


@pytest.mark.parametrize('name', list(VARIANTS))
def test_a_variant_moves_every_channel_and_the_reader_that_knows_the_layout_is_unaffected(name):
    """The same episodes as with the layout kept, each channel shown at its drawn place (the
    query and the context no longer where the headline tasks put them)."""
    cfg = VARIANTS[name]
    plain = dataclasses.replace(cfg, channel_order=None)
    moved = sample_episodes(cfg, 50, np.random.default_rng(4))
    kept = sample_episodes(plain, 50, np.random.default_rng(4))
    perm = cfg.channel_permutation()
    assert sorted(perm) == list(range(cfg.obs_dim))
    assert (perm != np.arange(cfg.obs_dim)).mean() > 0.8
    assert torch.equal(moved.obs[..., perm], kept.obs) and torch.equal(moved.labels, kept.labels)
    assert not torch.equal(moved.obs, kept.obs)
    calib = lambda c: sample_episodes(c, 300, np.random.default_rng(5))   # noqa: E731
    assert oracle_reader_accuracy(cfg, moved, calib(cfg)) == \
        oracle_reader_accuracy(plain, kept, calib(plain))
    with pytest.raises(ValueError, match='legacy task keeps its layout'):
        dataclasses.replace(CONFIGS['legacy_easy'], channel_order=1)


def test_context_task_labels_follow_the_most_recent_item_of_the_context_family():
    cfg = dataclasses.replace(CONFIGS['easy'], content_noise=0.0)
    eps = sample_episodes(cfg, 80, np.random.default_rng(1))
    protos = prototypes(cfg)
    n_items = 2 * N_CLASSES
    for obs, labels, kinds in zip(eps.obs.numpy(), eps.labels.numpy(), eps.kinds.numpy()):
        content = obs[:, :CONTENT_DIM]
        family = int(np.argmax(content[0] @ protos[n_items:].T))
        assert kinds[0] == CONTEXT
        answer = -1
        for t in range(1, cfg.horizon):
            best = int(np.argmax(content[t] @ protos[:n_items].T))
            fam, cls = divmod(best, N_CLASSES)
            if kinds[t] == EVENT:
                assert fam == family and cls != answer
                answer = cls
            elif kinds[t] == REPEAT:
                assert fam == family and cls == answer
            elif kinds[t] == DISTRACTOR:
                assert fam != family
            else:
                assert np.all(content[t] == 0)
            assert labels[t] == answer


def test_legacy_task_labels_follow_the_most_recent_flagged_event():
    cfg = dataclasses.replace(CONFIGS['legacy_easy'], content_noise=0.0, flag_noise=0.0)
    eps = sample_episodes(cfg, 50, np.random.default_rng(1))
    protos = prototypes(cfg)
    for obs, labels, kinds in zip(eps.obs.numpy(), eps.labels.numpy(), eps.kinds.numpy()):
        answer = -1
        for t in range(cfg.horizon):
            cls = int(np.argmax(obs[t, :16] @ protos.T))
            if kinds[t] == EVENT:
                assert cls != answer and obs[t, FLAG] == 1.0
                answer = cls
            elif kinds[t] == REPEAT:
                assert cls == answer and obs[t, FLAG] == 1.0
            elif kinds[t] == DISTRACTOR:
                assert obs[t, FLAG] == -1.0
            assert labels[t] == answer


@pytest.mark.parametrize('name', ['easy', 'hard'])
def test_answer_is_uniform_over_eight_classes_so_chance_is_one_eighth(name):
    eps = sample_episodes(CONFIGS[name], 4000, np.random.default_rng(2))
    freq = np.bincount(eps.answer.numpy(), minlength=N_CLASSES) / 4000
    assert np.all(np.abs(freq - 1 / N_CLASSES) < 0.02)
    assert abs(float((eps.answer == 3).float().mean()) - 0.125) < 0.02


def test_reader_ceiling_easy_near_one_hard_far_from_it():
    for name, lo, hi in (('easy', 0.97, 1.0), ('hard', 0.6, 0.9), ('legacy_hard', 0.5, 0.9)):
        cfg = CONFIGS[name]
        cal = sample_episodes(cfg, 600, np.random.default_rng(3))
        ev = sample_episodes(cfg, 600, np.random.default_rng(4))
        assert lo < oracle_reader_accuracy(cfg, ev, cal) <= hi, name


def test_same_seed_same_episodes():
    a = sample_episodes(CONFIGS['easy'], 4, np.random.default_rng(5))
    b = sample_episodes(CONFIGS['easy'], 4, np.random.default_rng(5))
    assert torch.equal(a.obs, b.obs) and torch.equal(a.labels, b.labels)


@pytest.mark.parametrize('bad', [dict(horizon=2), dict(events=(0, 2)), dict(events=(3, 1)),
                                 dict(distractors=(200, 200)), dict(content_noise=-0.1)])
def test_config_validates_itself(bad):
    base = dict(horizon=64, events=(2, 4), repeats=(0, 2), distractors=(2, 4),
                content_noise=0.1)
    with pytest.raises(ValueError):
        SyntheticTaskConfig(**{**base, **bad})


# ---- what one observation can tell ------------------------------------------------------------
def item_observations(name, kinds, n_episodes=3000, seed=6):
    """Single observations of two item kinds: (X, y) with y = 1 for the first kind."""
    eps = sample_episodes(CONFIGS[name], n_episodes, np.random.default_rng(seed))
    xs, ys = [], []
    for label, kind in ((1, kinds[0]), (0, kinds[1])):
        obs = eps.obs[eps.kinds == kind]
        xs.append(obs)
        ys.append(torch.full((len(obs),), float(label)))
    return torch.cat(xs), torch.cat(ys)


def balanced_accuracy(pred, y):
    return 0.5 * (float((pred[y == 1] == 1).float().mean()) + float((pred[y == 0] == 0).float()
                                                                     .mean()))


def linear_probe(name, kinds):
    """Held-out balanced accuracy of a logistic regression on single observations (with
    squared features too, so a quadratic read-out of one observation is covered)."""
    torch.manual_seed(0)
    x, y = item_observations(name, kinds)
    x = torch.cat([x, x.pow(2)], -1)
    perm = torch.randperm(len(y))
    x, y = x[perm], y[perm]
    n = len(y) * 2 // 3
    mean, std = x[:n].mean(0), x[:n].std(0) + 1e-6
    x = (x - mean) / std
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    pos = float(y[:n].mean())   # class-balanced loss
    weights = torch.where(y[:n] == 1, 0.5 / pos, 0.5 / (1 - pos))
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            x[:n] @ w + b, y[:n], weight=weights)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return balanced_accuracy((x[n:] @ w + b > 0).float(), y[n:])


def best_single_channel(name, kinds):
    """Best balanced accuracy of a threshold on any one channel (in-sample: an upper bound)."""
    x, y = item_observations(name, kinds, n_episodes=1500)
    best = 0.0
    for c in range(x.shape[1]):
        v = x[:, c]
        for th in torch.quantile(v, torch.linspace(0.05, 0.95, 19)):
            pred = (v > th).float()
            acc = balanced_accuracy(pred, y)
            best = max(best, acc, 1 - acc)
    return best


@pytest.mark.parametrize('kinds', [(EVENT, REPEAT), (EVENT, DISTRACTOR), (REPEAT, DISTRACTOR)])
def test_no_single_observation_tells_the_item_kind(kinds):
    """Event vs repeat vs distractor: a linear (and quadratic) probe of single observations
    stays at chance, and no channel separates them; only the memory state (the context,
    the stored answer) can."""
    assert linear_probe('hard', kinds) < 0.56
    assert best_single_channel('easy', kinds) < 0.56


def test_the_same_checks_catch_the_legacy_label_channel():
    """The checks above can fail: on the legacy task channel 16 marks distractors."""
    assert best_single_channel('legacy_easy', (EVENT, DISTRACTOR)) > 0.95
    assert linear_probe('legacy_hard', (EVENT, DISTRACTOR)) > 0.9
