"""Exceedance probabilities of the reference Perlin noise (the DRAEM-style `rand_perlin_2d_np`
that the SLSG reference code thresholds at 0.5 / 0.4), used to calibrate the thresholds of
the `noise` crate's Perlin, whose range differs. Written here from the algorithm's description:
unit gradients at random angles on a (res_x, res_y) lattice, quintic fade, result times sqrt(2).
Run: python3 bench/perlin_reference_coverage.py
"""
import numpy as np

def perlin(shape, res, rng):
    d = (shape[0] // res[0], shape[1] // res[1])
    grid = np.mgrid[0:res[0]:res[0] / shape[0], 0:res[1]:res[1] / shape[1]].transpose(1, 2, 0) % 1
    angles = 2 * np.pi * rng.random((res[0] + 1, res[1] + 1))
    g = np.stack((np.cos(angles), np.sin(angles)), axis=-1)
    tile = lambda s0, s1: np.repeat(np.repeat(g[s0[0]:s0[1], s1[0]:s1[1]], d[0], axis=0), d[1], axis=1)
    def dot(gr, shift):
        return (np.stack((grid[:, :, 0] + shift[0], grid[:, :, 1] + shift[1]), axis=-1) * gr).sum(-1)
    n00 = dot(tile([0, -1], [0, -1]), [0, 0]); n10 = dot(tile([1, None], [0, -1]), [-1, 0])
    n01 = dot(tile([0, -1], [1, None]), [0, -1]); n11 = dot(tile([1, None], [1, None]), [-1, -1])
    t = 6 * grid ** 5 - 15 * grid ** 4 + 10 * grid ** 3
    lerp = lambda a, b, w: (b - a) * w + a
    return np.sqrt(2) * lerp(lerp(n00, n10, t[..., 0]), lerp(n01, n11, t[..., 0]), t[..., 1])

rng = np.random.default_rng(0)
values = []
for _ in range(400):
    ax, ay = rng.integers(0, 4), rng.integers(0, 4)
    values.append(perlin((256, 256), (2 ** ax, 2 ** ay), rng).ravel())
values = np.concatenate(values)
for threshold in (0.3, 0.4, 0.5, 0.6):
    print(f"P(noise > {threshold}) = {np.mean(values > threshold):.4f}")
