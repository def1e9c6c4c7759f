//! The SG block (Eqs. 2–7): dense self-attention over all bottleneck nodes, plus a sparse graph
//! whose edges join each node to its top-K nodes by feature similarity minus position
//! similarity, aggregated by max-relative graph convolution; a 1×1 conv fuses both.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

#[derive(Config, Debug)]
pub struct SgBlockConfig {
    /// `C`, the bottleneck's channels.
    pub channels: usize,
    /// `z`: f and g reduce the channels to `C / z`.
    #[config(default = 8)]
    pub reduction: usize,
    /// `K`, neighbours per node in the sparse graph.
    #[config(default = 9)]
    pub neighbours: usize,
    /// `C_p`, channels of the 2-D sine-cosine position encoding.
    #[config(default = 64)]
    pub position_channels: usize,
    /// Subtract the position similarity `W_p` from the feature similarity (Eq. 5); off only
    /// for ablations.
    #[config(default = true)]
    pub subtract_position: bool,
}

impl SgBlockConfig {
    pub fn init(&self, device: &Device) -> SgBlock {
        let c = self.channels;
        let d = (c / self.reduction).max(1);
        let one_by_one =
            |input: usize, output: usize| Conv2dConfig::new([input, output], [1, 1]).init(device);
        SgBlock {
            f: one_by_one(c, d),
            g: one_by_one(c, d),
            h: one_by_one(c, c),
            u: one_by_one(2 * c, c),
            neighbours: self.neighbours,
            position_channels: self.position_channels,
            subtract_position: self.subtract_position,
        }
    }
}

#[derive(Module, Debug)]
pub struct SgBlock {
    pub f: Conv2d,
    pub g: Conv2d,
    h: Conv2d,
    u: Conv2d,
    neighbours: usize,
    position_channels: usize,
    subtract_position: bool,
}

impl SgBlock {
    /// `X′ = u([Z′, V″])` for the bottleneck `x` of shape `[batch, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let fx = self.f.forward(x.clone());
        let d = fx.dims()[1];
        let queries = fx.reshape([b, d, n]).swap_dims(1, 2); // [B, N, d]
        let keys = self.g.forward(x.clone()).reshape([b, d, n]); // [B, d, N]
        let values = self.h.forward(x.clone()).reshape([b, c, n]).swap_dims(1, 2); // [B, N, C]

        // Dense relationships, Eqs. 2–3.
        let dense = softmax(
            queries
                .clone()
                .matmul(keys.clone())
                .div_scalar((d as f64).sqrt()),
            2,
        );
        let z = dense.matmul(values).swap_dims(1, 2).reshape([b, c, h, w]);

        // Sparse relationships, Eqs. 4–6.
        let indices = self.neighbour_indices(queries, keys, h, w);
        let k = indices.dims()[2];
        let nodes = x.reshape([b, c, n]).swap_dims(1, 2); // [B, N, C]
        let gather_index = indices.reshape([b, n * k, 1]).expand([b, n * k, c]);
        let neighbours = nodes.clone().gather(1, gather_index).reshape([b, n, k, c]);
        // Eq. 6, max_j (v_j − v_i), computed as (max_j v_j) − v_i: the same values and
        // gradients without broadcasting v_i over the K neighbours.
        let v = (neighbours.max_dim(2).reshape([b, n, c]) - nodes)
            .swap_dims(1, 2)
            .reshape([b, c, h, w]);

        // Eq. 7.
        self.u.forward(Tensor::cat(vec![z, v], 1))
    }

    /// The K neighbours of every node, `[batch, N, K]`, by `W_s = CosSim(f, g) − W_p` (or by
    /// the feature similarity alone when `subtract_position` is off).
    pub fn neighbour_indices(
        &self,
        queries: Tensor<3>,
        keys: Tensor<3>,
        h: usize,
        w: usize,
    ) -> Tensor<3, Int> {
        let n = h * w;
        let queries = l2_normalise(queries.detach(), 2);
        let keys = l2_normalise(keys.detach(), 1);
        let mut similarity = queries.matmul(keys); // [B, N, N]
        if self.subtract_position {
            let positions = position_similarity(h, w, self.position_channels, &similarity.device());
            similarity = similarity - positions.unsqueeze_dim(0);
        }
        // A full sort: `argtopk` is not implemented by every backend (Flex lacks it), and N is
        // small (256 nodes at 256 px).
        let k = self.neighbours.min(n);
        similarity.argsort_descending(2).narrow(2, 0, k)
    }

    /// Neighbour indices for a bottleneck map, as used by [`forward`](Self::forward).
    pub fn neighbours_of(&self, x: Tensor<4>) -> Tensor<3, Int> {
        let [b, _, h, w] = x.dims();
        let fx = self.f.forward(x.clone());
        let d = fx.dims()[1];
        let queries = fx.reshape([b, d, h * w]).swap_dims(1, 2);
        let keys = self.g.forward(x).reshape([b, d, h * w]);
        self.neighbour_indices(queries, keys, h, w)
    }
}

fn l2_normalise(x: Tensor<3>, dim: usize) -> Tensor<3> {
    let norm = x.clone().square().sum_dim(dim).sqrt().clamp_min(1e-12);
    x / norm
}

/// The 2-D sine-cosine position encoding of an `h × w` grid (half the channels for rows, half
/// for columns; frequencies `1 / 10000^(2i / D)`), one row per node.
pub fn position_encoding(h: usize, w: usize, channels: usize) -> Vec<Vec<f32>> {
    let per_axis = (channels / 2).max(2);
    let frequencies: Vec<f64> = (0..per_axis / 2)
        .map(|i| 1.0 / 10000f64.powf(2.0 * i as f64 / per_axis as f64))
        .collect();
    let axis = |pos: usize| -> Vec<f32> {
        let sin = frequencies.iter().map(|f| (pos as f64 * f).sin() as f32);
        let cos = frequencies.iter().map(|f| (pos as f64 * f).cos() as f32);
        sin.chain(cos).collect()
    };
    (0..h * w)
        .map(|i| {
            let mut row = axis(i / w);
            row.extend(axis(i % w));
            row
        })
        .collect()
}

/// `W_p = CosSim(P, Pᵀ)` (Eq. 4), `[N, N]`.
fn position_similarity(h: usize, w: usize, channels: usize, device: &Device) -> Tensor<2> {
    let encoding = position_encoding(h, w, channels);
    let normalised: Vec<Vec<f32>> = encoding
        .into_iter()
        .map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.into_iter().map(|v| v / norm).collect()
        })
        .collect();
    let n = h * w;
    let mut similarity = Vec::with_capacity(n * n);
    for a in &normalised {
        for b in &normalised {
            similarity.push(a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>());
        }
    }
    Tensor::<1>::from_floats(similarity.as_slice(), device).reshape([n, n])
}
