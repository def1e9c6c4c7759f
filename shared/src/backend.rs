//! The compute backends, chosen in this one place: Burn's `Flex` CPU backend everywhere, Burn's
//! wgpu backend with the `wgpu` feature, Burn's CUDA backend with the `cuda` feature. Code
//! elsewhere is generic over `Backend`; a [`BackendJob`] is run on the backend a [`Device`] names.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

/// The CPU backend and its autodiff wrapper.
pub type Cpu = Flex;
pub type CpuTrain = Autodiff<Cpu>;

#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;
#[cfg(feature = "cuda")]
pub type CudaTrain = Autodiff<Cuda>;

#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;
#[cfg(feature = "wgpu")]
pub type WgpuTrain = Autodiff<Wgpu>;

/// GPUs a machine may name by index (`cuda:0` to `cuda:63`, `wgpu:0` to `wgpu:63`).
pub const MAX_GPU_DEVICES: usize = 64;

/// Where a job runs: `cpu`, `cuda:N`, or `wgpu` (the default adapter) / `wgpu:N` (the N-th
/// adapter wgpu lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Device {
    Cpu,
    Cuda(usize),
    Wgpu(Option<usize>),
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}` (expected cpu, cuda:N or wgpu[:N], N from 0 to 63)")]
    Unknown(String),
    #[error("device `{device}` needs a build with `--features {feature}`")]
    NotBuilt {
        device: String,
        feature: &'static str,
    },
    #[error("device `{device}` is not available: {reason}")]
    Unavailable { device: String, reason: String },
    #[error(
        "the GPU settings of this process are already {current}; one process uses one autotune level and one cache folder"
    )]
    SettingsChanged { current: String },
}

impl FromStr for Device {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let index = |n: &str| {
            n.parse()
                .ok()
                .filter(|n| *n < MAX_GPU_DEVICES)
                .ok_or_else(|| DeviceError::Unknown(s.to_string()))
        };
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            "wgpu" => Ok(Device::Wgpu(None)),
            _ => match s.split_once(':') {
                Some(("cuda", n)) => index(n).map(Device::Cuda),
                Some(("wgpu", n)) => index(n).map(|n| Device::Wgpu(Some(n))),
                _ => Err(DeviceError::Unknown(s.to_string())),
            },
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
            Device::Wgpu(None) => write!(f, "wgpu"),
            Device::Wgpu(Some(n)) => write!(f, "wgpu:{n}"),
        }
    }
}

impl Device {
    /// Whether this build and this machine can run the device: a backend left out of the
    /// build, a missing NVIDIA driver, or a GPU or wgpu adapter that is not there, is refused
    /// before any job is given to it.
    pub fn check(self) -> Result<(), DeviceError> {
        match self {
            Device::Cpu => Ok(()),
            #[cfg(feature = "cuda")]
            Device::Cuda(index) => nvidia::check(self, index),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(self.not_built("cuda")),
            #[cfg(feature = "wgpu")]
            Device::Wgpu(index) => adapters::wgpu_device(self, index).map(|_| ()),
            #[cfg(not(feature = "wgpu"))]
            Device::Wgpu(_) => Err(self.not_built("wgpu")),
        }
    }

    #[allow(dead_code, reason = "unused in builds with every backend")]
    fn not_built(self, feature: &'static str) -> DeviceError {
        DeviceError::NotBuilt {
            device: self.to_string(),
            feature,
        }
    }

    /// Whether the device runs Burn's GPU runtime (CubeCL), which compiles and tunes kernels.
    pub fn is_gpu(self) -> bool {
        !matches!(self, Device::Cpu)
    }
}

/// How hard the GPU backends benchmark kernel variants before using one (CubeCL's autotune
/// levels). Tuning happens once per kernel shape and device; its results are kept in
/// [`GpuSettings::cache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutotuneLevel {
    #[default]
    Minimal,
    Balanced,
    Extensive,
    Full,
}

impl AutotuneLevel {
    pub const ALL: [AutotuneLevel; 4] = [
        AutotuneLevel::Minimal,
        AutotuneLevel::Balanced,
        AutotuneLevel::Extensive,
        AutotuneLevel::Full,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AutotuneLevel::Minimal => "minimal",
            AutotuneLevel::Balanced => "balanced",
            AutotuneLevel::Extensive => "extensive",
            AutotuneLevel::Full => "full",
        }
    }
}

impl fmt::Display for AutotuneLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AutotuneLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AutotuneLevel::ALL
            .into_iter()
            .find(|level| level.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown autotune level `{s}` (expected minimal, balanced, extensive or full)"
                )
            })
    }
}

/// Process-wide settings of the GPU backends, applied once before the first kernel runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuSettings {
    pub autotune: AutotuneLevel,
    /// Where tuning results and compiled kernels are kept across runs and jobs (below a
    /// worker's cache folder).
    pub cache: PathBuf,
}

impl fmt::Display for GpuSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "autotune {}, results kept in {}",
            self.autotune,
            self.cache.display()
        )
    }
}

/// Applies `settings` to the GPU backends of this process. The first call decides; a later
/// call with the same settings does nothing, one with other settings is refused. Builds
/// without a GPU backend accept any settings.
pub fn configure_gpu(settings: &GpuSettings) -> Result<(), DeviceError> {
    static APPLIED: std::sync::OnceLock<GpuSettings> = std::sync::OnceLock::new();
    let applied = APPLIED.get_or_init(|| {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        cubecl_settings::apply(settings);
        settings.clone()
    });
    if applied == settings {
        Ok(())
    } else {
        Err(DeviceError::SettingsChanged {
            current: applied.to_string(),
        })
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cubecl_settings {
    use burn::cubecl::config::autotune::AutotuneLevel as Level;
    use burn::cubecl::config::cache::CacheConfig;
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

    use super::{AutotuneLevel, GpuSettings};

    /// CubeCL reads its configuration once, at the first kernel; nothing has run yet when
    /// [`super::configure_gpu`] calls this. CubeCL's own environment variables (its debug
    /// logs, `CUBECL_DEBUG_LOG`) still apply; the level and the cache folder are ours.
    pub fn apply(settings: &GpuSettings) {
        let mut config = CubeClRuntimeConfig::default().override_from_env();
        config.autotune.level = match settings.autotune {
            AutotuneLevel::Minimal => Level::Minimal,
            AutotuneLevel::Balanced => Level::Balanced,
            AutotuneLevel::Extensive => Level::Extensive,
            AutotuneLevel::Full => Level::Full,
        };
        config.autotune.cache = CacheConfig::File(settings.cache.clone());
        config.compilation.cache = Some(CacheConfig::File(settings.cache.clone()));
        CubeClRuntimeConfig::set(config);
    }
}

#[cfg(feature = "wgpu")]
mod adapters {
    use burn::backend::wgpu::WgpuDevice;
    use burn::backend::wgpu::graphics::{AutoGraphicsApi, GraphicsApi};

    use super::{Device, DeviceError};

    /// One line per adapter wgpu lists: `0 llvmpipe (LLVM 15.0.6, 256 bits) [Cpu]`.
    fn describe(adapters: &[wgpu::AdapterInfo]) -> String {
        if adapters.is_empty() {
            return format!(
                "wgpu lists no {:?} adapter (install the GPU's driver, or Mesa's `mesa-vulkan-drivers` for a CPU one)",
                AutoGraphicsApi::backend()
            );
        }
        let listed: Vec<String> = adapters
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{i} {} [{:?}]", a.name, a.device_type))
            .collect();
        format!("wgpu lists {}", listed.join(", "))
    }

    /// The adapters of the graphics API Burn's wgpu backend uses here, in wgpu's order.
    fn list() -> Vec<wgpu::AdapterInfo> {
        let backend = AutoGraphicsApi::backend();
        // No debug flags: with them the Vulkan loader's own complaint about a missing driver
        // is logged as an error above the one-line refusal this listing leads to.
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: backend.into(),
            flags: wgpu::InstanceFlags::empty(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        burn::cubecl::future::block_on(instance.enumerate_adapters(backend.into()))
            .into_iter()
            .map(|adapter| adapter.get_info())
            .collect()
    }

    /// Burn's name for the adapter `device` means, or why there is none. Burn picks adapters
    /// by kind and rank among that kind, and panics when one is missing, so the choice is made
    /// here first.
    pub fn wgpu_device(device: Device, index: Option<usize>) -> Result<WgpuDevice, DeviceError> {
        let adapters = list();
        let unavailable = |reason: String| DeviceError::Unavailable {
            device: device.to_string(),
            reason,
        };
        let Some(index) = index else {
            return if adapters.is_empty() {
                Err(unavailable(describe(&adapters)))
            } else {
                Ok(WgpuDevice::DefaultDevice)
            };
        };
        let Some(chosen) = adapters.get(index) else {
            return Err(unavailable(format!(
                "there is no adapter {index}; {}",
                describe(&adapters)
            )));
        };
        let rank = adapters[..index]
            .iter()
            .filter(|a| a.device_type == chosen.device_type)
            .count();
        match chosen.device_type {
            wgpu::DeviceType::DiscreteGpu => Ok(WgpuDevice::DiscreteGpu(rank)),
            wgpu::DeviceType::IntegratedGpu => Ok(WgpuDevice::IntegratedGpu(rank)),
            wgpu::DeviceType::VirtualGpu => Ok(WgpuDevice::VirtualGpu(rank)),
            wgpu::DeviceType::Cpu if rank == 0 => Ok(WgpuDevice::Cpu),
            _ => Err(unavailable(format!(
                "Burn's wgpu backend cannot select adapter {index} ({} [{:?}]); {}",
                chosen.name,
                chosen.device_type,
                describe(&adapters)
            ))),
        }
    }
}

#[cfg(feature = "cuda")]
mod nvidia {
    use cudarc::driver::result;

    use super::{Device, DeviceError};

    /// Whether the NVIDIA driver loads and lists GPU `index`. Burn's CUDA backend panics
    /// without a driver, so a CUDA build on a machine without one is refused here instead.
    pub fn check(device: Device, index: usize) -> Result<(), DeviceError> {
        let unavailable = |reason: String| DeviceError::Unavailable {
            device: device.to_string(),
            reason,
        };
        // SAFETY: only opens the driver library by its usual names to see whether it loads.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(unavailable(
                "no NVIDIA driver: libcuda could not be loaded (install the driver, or add its folder to LD_LIBRARY_PATH)".into(),
            ));
        }
        result::init().map_err(|e| unavailable(format!("the NVIDIA driver did not start: {e}")))?;
        let count = result::device::get_count()
            .map_err(|e| unavailable(format!("the NVIDIA driver lists no GPU: {e}")))?;
        let count = usize::try_from(count).unwrap_or(0);
        if index >= count {
            return Err(unavailable(format!(
                "no GPU {index}: the NVIDIA driver lists {count}"
            )));
        }
        Ok(())
    }
}

/// The backends this build can run, in the order `slsg --version` lists them.
pub fn built_backends() -> Vec<&'static str> {
    let mut backends = vec!["cpu"];
    if cfg!(feature = "wgpu") {
        backends.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        backends.push("cuda");
    }
    backends
}

/// Burn's wgpu device for `wgpu` (`None`) or `wgpu:N`, or why there is none.
#[cfg(feature = "wgpu")]
pub fn wgpu_device(index: Option<usize>) -> Result<burn::backend::wgpu::WgpuDevice, DeviceError> {
    adapters::wgpu_device(Device::Wgpu(index), index)
}

/// Work generic over the training backend, run by [`run_on`].
pub trait BackendJob {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `job` on the backend of `device`. A GPU runtime is only touched when asked for, so a
/// machine without a driver never loads it.
pub fn run_on<J: BackendJob>(device: Device, job: J) -> Result<J::Output, DeviceError> {
    match device {
        Device::Cpu => Ok(job.run::<CpuTrain>(Default::default())),
        #[cfg(feature = "cuda")]
        Device::Cuda(index) => {
            device.check()?;
            Ok(job.run::<CudaTrain>(burn::backend::cuda::CudaDevice::new(index)))
        }
        #[cfg(feature = "wgpu")]
        Device::Wgpu(index) => Ok(job.run::<WgpuTrain>(adapters::wgpu_device(device, index)?)),
        #[allow(
            unreachable_patterns,
            reason = "reached in builds without a GPU backend"
        )]
        other => Err(other
            .check()
            .err()
            .unwrap_or(DeviceError::Unknown(other.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_devices() {
        for (text, device) in [
            ("cpu", Device::Cpu),
            ("cuda:1", Device::Cuda(1)),
            ("wgpu", Device::Wgpu(None)),
            ("wgpu:0", Device::Wgpu(Some(0))),
            ("wgpu:63", Device::Wgpu(Some(63))),
        ] {
            assert_eq!(text.parse::<Device>().unwrap(), device);
            assert_eq!(device.to_string(), text);
        }
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        for wrong in [
            "gpu", "wgpu:64", "wgpu:", "cuda:-1", "wgpu:x", "cpu:0", ":1",
        ] {
            let error = wrong.parse::<Device>().unwrap_err().to_string();
            assert!(error.contains(&format!("`{wrong}`")), "{error}");
        }
    }

    #[test]
    fn autotune_levels_round_trip_their_names() {
        for level in AutotuneLevel::ALL {
            assert_eq!(level.name().parse::<AutotuneLevel>(), Ok(level));
        }
        assert!(
            "fast"
                .parse::<AutotuneLevel>()
                .unwrap_err()
                .contains("`fast`")
        );
    }
}
