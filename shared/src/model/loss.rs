//! The losses of Eqs. 8–11: least-squares GAN, L1, L2 and focal loss, each a mean over
//! elements.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Eq. 8: `L_G = ½ (D(G(x_m)) − 1)²`.
pub fn lsgan_generator(fake_scores: Tensor<4>) -> Tensor<1> {
    fake_scores.sub_scalar(1.0).square().mean().mul_scalar(0.5)
}

/// Eq. 9: `L_D = ½ D(G(x_m))² + ½ (D(x) − 1)²`.
pub fn lsgan_discriminator(fake_scores: Tensor<4>, real_scores: Tensor<4>) -> Tensor<1> {
    fake_scores.square().mean().mul_scalar(0.5)
        + real_scores.sub_scalar(1.0).square().mean().mul_scalar(0.5)
}

pub fn l1<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<1> {
    (a - b).abs().mean()
}

pub fn l2<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<1> {
    (a - b).square().mean()
}

/// Focal loss `−(1 − p_t)^γ log p_t` of two-class logits `[B, 2, H, W]` against a 0/1 mask
/// `[B, 1, H, W]` (1 = anomalous).
pub fn focal(logits: Tensor<4>, target: Tensor<4>, gamma: f64) -> Tensor<1> {
    let log_probabilities = log_softmax(logits, 1);
    let log_normal = log_probabilities.clone().narrow(1, 0, 1);
    let log_anomalous = log_probabilities.narrow(1, 1, 1);
    let log_pt = target.clone() * log_anomalous + (target.neg().add_scalar(1.0)) * log_normal;
    let pt = log_pt.clone().exp();
    (pt.neg().add_scalar(1.0).powf_scalar(gamma) * log_pt)
        .neg()
        .mean()
}
