"""The synthetic 8-way task: labels, item kinds, chance level, the reader's ceiling."""
import numpy as np
import pytest
import torch

from aura_ros.core.synthetic import (
    CONFIGS,
    DISTRACTOR,
    EVENT,
    FLAG,
    N_CLASSES,
    OBS_DIM,
    QUERY,
    QUERY_STEP,
    REPEAT,
    SyntheticTaskConfig,
    oracle_reader_accuracy,
    prototypes,
    sample_episodes,
)


@pytest.mark.parametrize('name', ['easy', 'hard'])
def test_shapes_and_item_counts(name):
    cfg = CONFIGS[name]
    eps = sample_episodes(cfg, 64, np.random.default_rng(0))
    assert eps.obs.shape == (64, cfg.horizon, OBS_DIM) and eps.obs.dtype == torch.float32
    for kinds in eps.kinds:
        n = {k: int((kinds == k).sum()) for k in (EVENT, REPEAT, DISTRACTOR)}
        assert cfg.events[0] <= n[EVENT] <= cfg.events[1]
        assert cfg.repeats[0] <= n[REPEAT] <= cfg.repeats[1]
        assert cfg.distractors[0] <= n[DISTRACTOR] <= cfg.distractors[1]
        assert kinds[-1] == QUERY_STEP
    assert torch.all(eps.obs[:, -1, QUERY] == 1) and torch.all(eps.obs[:, :-1, QUERY] == 0)


def test_labels_follow_the_most_recent_real_event():
    cfg = SyntheticTaskConfig(horizon=40, events=(3, 3), repeats=(2, 2), distractors=(5, 5),
                              content_noise=0.0, flag_noise=0.0)
    eps = sample_episodes(cfg, 50, np.random.default_rng(1))
    protos = prototypes()
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
                assert cls != answer and obs[t, FLAG] == -1.0
            assert labels[t] == answer


def test_answer_is_uniform_over_eight_classes_so_chance_is_one_eighth():
    eps = sample_episodes(CONFIGS['hard'], 4000, np.random.default_rng(2))
    freq = np.bincount(eps.answer.numpy(), minlength=N_CLASSES) / 4000
    assert np.all(np.abs(freq - 1 / N_CLASSES) < 0.02)
    # A constant guess scores at chance.
    assert abs(float((eps.answer == 3).float().mean()) - 0.125) < 0.02


def test_reader_ceiling_easy_near_one_hard_far_from_it():
    cal = {n: sample_episodes(c, 600, np.random.default_rng(3)) for n, c in CONFIGS.items()}
    ev = {n: sample_episodes(c, 600, np.random.default_rng(4)) for n, c in CONFIGS.items()}
    assert oracle_reader_accuracy(ev['easy'], cal['easy']) > 0.97
    assert 0.5 < oracle_reader_accuracy(ev['hard'], cal['hard']) < 0.9


def test_same_seed_same_episodes():
    a = sample_episodes(CONFIGS['easy'], 4, np.random.default_rng(5))
    b = sample_episodes(CONFIGS['easy'], 4, np.random.default_rng(5))
    assert torch.equal(a.obs, b.obs) and torch.equal(a.labels, b.labels)


@pytest.mark.parametrize('bad', [dict(horizon=2), dict(events=(0, 2)), dict(events=(3, 1)),
                                 dict(distractors=(200, 200))])
def test_config_validates_itself(bad):
    base = dict(horizon=64, events=(2, 4), repeats=(0, 2), distractors=(2, 4),
                content_noise=0.1, flag_noise=0.1)
    with pytest.raises(ValueError):
        SyntheticTaskConfig(**{**base, **bad})
