"""The compiled step's own numerics (its equality with the torch reference step is tested in
test_modeling_aura.py)."""
import math

import numpy as np

from aura_ros.core.fast_step import _erf, _gelu


def test_erf_approximation_matches_libm_within_float32_rounding():
    xs = np.linspace(-10.0, 10.0, 40_001)
    err = max(abs(_erf(x) - math.erf(x)) for x in xs)
    assert err < 2e-7


def test_gelu_is_the_exact_erf_gelu():
    for x in np.linspace(-6.0, 6.0, 1201):
        exact = 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))
        assert abs(_gelu(x) - exact) < 1e-6 * max(1.0, abs(x))


def test_a_segment_no_kernel_reads_is_refused_by_name():
    """The compiled step packs what the modules declare by name (compiled_segments); a new
    gate input declared without a kernel reading it is an error, not silently dropped."""
    import pytest

    from aura_ros.core.configuration_aura import AuraConfig
    from aura_ros.core.fast_step import P, pack
    from aura_ros.core.modeling_aura import FastWeightMemory

    memory = FastWeightMemory(AuraConfig(feature_dim=8, action_dim=2, kind='aura'))
    segments = memory.compiled_segments()
    params, poffs = pack(segments)
    assert np.array_equal(params[poffs[P.probe_q]:poffs[P.probe_q + 1]],
                          np.ravel(segments['probe_q']))
    with pytest.raises(ValueError, match='gate_new_input'):
        pack({**segments, 'gate_new_input': np.zeros(3, np.float32)})
