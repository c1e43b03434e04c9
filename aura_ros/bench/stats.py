"""Interval estimates the benchmarks report (numpy only, no scipy)."""
import math

import numpy as np

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_interval(values, bounds=(0.0, 1.0)):
    """Mean and 95% Student-t interval over seeds (the point itself for one seed), clipped to
    ``bounds`` (an accuracy interval never leaves [0, 1])."""
    values = np.asarray(values, float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, [mean, mean]
    t = T975[min(len(values) - 1, len(T975)) - 1] if len(values) <= 31 else 1.96
    half = t * values.std(ddof=1) / math.sqrt(len(values))
    return mean, [float(max(bounds[0], mean - half)), float(min(bounds[1], mean + half))]


def wilson(successes, n, z=1.959964):
    """Wilson score 95% interval for a binomial proportion; it always contains successes / n
    (rounding at p = 0 or 1 cannot push a bound past the point)."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))]
