//! Batch normalisation for `[batch, C, H, W]` maps, numerically the same as Burn's `BatchNorm`
//! (biased batch variance, running statistics with momentum) but shaped for the CPU backend:
//! statistics are summed along contiguous axes instead of after a transpose, and the
//! per-channel scale and shift are applied as `[batch, C, 1, 1]` operands, which Flex
//! broadcasts with SIMD (a `[1, C, 1, 1]` operand falls back to a strided loop ~10× slower).

use burn::module::{Initializer, Module, Param, RunningState};
use burn::prelude::*;

#[derive(Config, Debug)]
pub struct BatchNorm2dConfig {
    pub channels: usize,
    #[config(default = 1e-5)]
    pub epsilon: f64,
    #[config(default = 0.1)]
    pub momentum: f64,
}

impl BatchNorm2dConfig {
    pub fn init(&self, device: &Device) -> BatchNorm2d {
        BatchNorm2d {
            gamma: Initializer::Ones.init([self.channels], device),
            beta: Initializer::Zeros.init([self.channels], device),
            running_mean: RunningState::new(Tensor::zeros([self.channels], device)),
            running_var: RunningState::new(Tensor::ones([self.channels], device)),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

#[derive(Module, Debug)]
pub struct BatchNorm2d {
    pub gamma: Param<Tensor<1>>,
    pub beta: Param<Tensor<1>>,
    pub running_mean: RunningState<Tensor<1>>,
    pub running_var: RunningState<Tensor<1>>,
    momentum: f64,
    epsilon: f64,
}

impl BatchNorm2d {
    /// Batch statistics (and a running-statistics update) under autodiff, running
    /// statistics otherwise.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        let [batch, channels, h, w] = x.dims();
        let (mean, var) = if device.is_autodiff() {
            let count = (batch * h * w) as f64;
            let per_channel = |t: Tensor<4>| {
                t.sum_dim(3)
                    .sum_dim(2)
                    .sum_dim(0)
                    .reshape([channels])
                    .div_scalar(count)
            };
            let mean = per_channel(x.clone());
            let var = (per_channel(x.clone().square()) - mean.clone().square()).clamp_min(0.0);
            let update = |state: &RunningState<Tensor<1>>, batch_value: Tensor<1>| {
                let running = state.value_sync().to_device(&device);
                state.update(
                    running
                        .mul_scalar(1.0 - self.momentum)
                        .add(batch_value.detach().mul_scalar(self.momentum))
                        .detach(),
                );
            };
            update(&self.running_mean, mean.clone());
            update(&self.running_var, var.clone());
            (mean, var)
        } else {
            (
                self.running_mean.value().to_device(&device),
                self.running_var.value().to_device(&device),
            )
        };
        let scale = self.gamma.val() / var.add_scalar(self.epsilon).sqrt();
        let shift = self.beta.val() - mean * scale.clone();
        x * per_sample(scale, batch) + per_sample(shift, batch)
    }
}

/// A per-channel vector laid out as a contiguous `[batch, C, 1, 1]` operand.
pub fn per_sample(values: Tensor<1>, batch: usize) -> Tensor<4> {
    let channels = values.dims()[0];
    values.reshape([1, channels, 1, 1]).repeat_dim(0, batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu_device;
    use crate::model::random_seeded;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    /// Same outputs and running statistics as Burn's own `BatchNorm`.
    #[test]
    fn matches_burn_batch_norm() {
        let device = cpu_device().autodiff();
        let x = random_seeded([3, 5, 4, 6], Distribution::Normal(2.0, 3.0), 1, &device);
        let ours = BatchNorm2dConfig::new(5).init(&device);
        let burns = BatchNormConfig::new(5).init(&device);
        ours.forward(x.clone()).into_data().assert_approx_eq::<f32>(
            &burns.forward(x.clone()).into_data(),
            Tolerance::absolute(1e-4),
        );
        ours.running_mean
            .value()
            .into_data()
            .assert_approx_eq::<f32>(
                &burns.running_mean.value().into_data(),
                Tolerance::absolute(1e-5),
            );
        ours.running_var
            .value()
            .into_data()
            .assert_approx_eq::<f32>(
                &burns.running_var.value().into_data(),
                Tolerance::absolute(1e-4),
            );
        let (ours, burns) = (ours.valid(), burns.valid());
        let x = x.inner();
        let a = ours.forward(x.clone());
        let b: Tensor<4> = burns.forward(x);
        a.into_data()
            .assert_approx_eq::<f32>(&b.into_data(), Tolerance::absolute(1e-4));
    }
}
