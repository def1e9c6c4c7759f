//! The compute backends, chosen in this one place: Burn's `Flex` CPU backend everywhere, and
//! Burn's CUDA backend with the `cuda` feature. Code elsewhere is generic over `Backend`; a
//! [`BackendJob`] is run on the backend a [`Device`] names.

use std::fmt;
use std::str::FromStr;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

/// The CPU backend and its autodiff wrapper.
pub type Cpu = Flex;
pub type CpuTrain = Autodiff<Cpu>;

#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda;
#[cfg(feature = "cuda")]
pub type GpuTrain = Autodiff<Gpu>;

/// CUDA devices a machine may name (`cuda:0` to `cuda:63`).
pub const MAX_CUDA_DEVICES: usize = 64;

/// Where a job runs: `cpu` or `cuda:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Device {
    Cpu,
    Cuda(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}` (expected cpu or cuda:N, N from 0 to 63)")]
    Unknown(String),
    #[error("device `{0}` needs a build with `--features cuda`")]
    CudaNotBuilt(String),
}

impl FromStr for Device {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .filter(|n| *n < MAX_CUDA_DEVICES)
                .map(Device::Cuda)
                .ok_or_else(|| DeviceError::Unknown(s.to_string())),
        }
    }
}

impl TryFrom<String> for Device {
    type Error = DeviceError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Device> for String {
    fn from(d: Device) -> String {
        d.to_string()
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Work generic over the training backend, run by [`run_on`].
pub trait BackendJob {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `job` on the backend of `device`. CUDA is only touched when asked for, so a machine
/// without a driver never loads it.
pub fn run_on<J: BackendJob>(device: Device, job: J) -> Result<J::Output, DeviceError> {
    match device {
        Device::Cpu => Ok(job.run::<CpuTrain>(Default::default())),
        #[cfg(feature = "cuda")]
        Device::Cuda(index) => Ok(job.run::<GpuTrain>(burn::backend::cuda::CudaDevice::new(index))),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => Err(DeviceError::CudaNotBuilt(device.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_devices() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda:1".parse::<Device>().unwrap(), Device::Cuda(1));
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
        assert!(
            "gpu"
                .parse::<Device>()
                .unwrap_err()
                .to_string()
                .contains("gpu")
        );
    }
}
