//! The compute devices, chosen in this one place: Burn's `Flex` CPU backend everywhere, Burn's
//! wgpu backend with the `wgpu` feature, Burn's CUDA backend with the `cuda` feature. Code
//! elsewhere takes a Burn device; a [`Device`] names one and checks it is there first.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Burn's one device type: a backend, an adapter or GPU on it, and whether autodiff records.
pub use burn::tensor::Device as BurnDevice;

/// The CPU device every build has (Burn's Flex backend), without autodiff.
pub fn cpu_device() -> BurnDevice {
    BurnDevice::flex()
}

/// Makes the CPU Burn's default device in this process unless `BURN_DEVICE` already names
/// one. Burn otherwise defaults to the first GPU runtime built in, which a machine without a
/// GPU cannot start, and a few of Burn's own paths (an optimiser's restored state) use the
/// default device. Call it first thing in `main`, before any thread starts.
pub fn default_to_cpu() {
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: called before the process starts any thread, so nothing reads the
        // environment concurrently.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
}

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
    #[error(
        "the GPU settings came after a GPU runtime had started with CubeCL's own; apply them before the first GPU device is used"
    )]
    SettingsTooLate,
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
            Device::Wgpu(index) => adapters::wgpu_device(self, index).map(drop),
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

/// Applies `settings` to the GPU backends of this process, before any GPU device is used
/// (starting a GPU runtime fixes CubeCL's configuration; a later call is refused). The first
/// call decides; a later call with the same settings does nothing, one with other settings is
/// refused. Builds without a GPU backend accept any settings.
pub fn configure_gpu(settings: &GpuSettings) -> Result<(), DeviceError> {
    static APPLIED: std::sync::OnceLock<Option<GpuSettings>> = std::sync::OnceLock::new();
    let applied = APPLIED.get_or_init(|| {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if !cubecl_settings::apply(settings) {
            return None;
        }
        Some(settings.clone())
    });
    match applied {
        None => Err(DeviceError::SettingsTooLate),
        Some(applied) if applied == settings => Ok(()),
        Some(applied) => Err(DeviceError::SettingsChanged {
            current: applied.to_string(),
        }),
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cubecl_settings {
    use burn::cubecl::config::autotune::AutotuneLevel as Level;
    use burn::cubecl::config::cache::CacheConfig;
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

    use super::{AutotuneLevel, GpuSettings};

    /// CubeCL reads its configuration once, when the first GPU runtime starts; false when that
    /// has happened (the settings are then not applied). CubeCL's own environment variables
    /// (its debug logs, `CUBECL_DEBUG_LOG`) still apply; the level and the cache folder are
    /// ours.
    pub fn apply(settings: &GpuSettings) -> bool {
        let mut config = CubeClRuntimeConfig::default().override_from_env();
        config.autotune.level = match settings.autotune {
            AutotuneLevel::Minimal => Level::Minimal,
            AutotuneLevel::Balanced => Level::Balanced,
            AutotuneLevel::Extensive => Level::Extensive,
            AutotuneLevel::Full => Level::Full,
        };
        config.environment.path = CacheConfig::Directory(settings.cache.clone());
        config.compilation.cache = true;
        CubeClRuntimeConfig::try_set(config)
    }
}

#[cfg(feature = "wgpu")]
mod adapters {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use burn::tensor::DeviceKind;
    use burn::tensor::wgpu::{WgpuBackend, wgpu};

    use super::{BurnDevice, Device, DeviceError};

    /// The graphics APIs listed: those Burn's wgpu backend runs kernels on natively.
    fn graphics_apis() -> wgpu::Backends {
        wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12
    }

    /// Burn's name for the graphics API an adapter is on.
    fn pinned(api: wgpu::Backend) -> WgpuBackend {
        match api {
            wgpu::Backend::Vulkan => WgpuBackend::Vulkan,
            wgpu::Backend::Metal => WgpuBackend::Metal,
            wgpu::Backend::Dx12 => WgpuBackend::Dx12,
            _ => WgpuBackend::Auto,
        }
    }

    /// One line per adapter wgpu lists: `0 llvmpipe (LLVM 15.0.6, 256 bits) [Cpu]`.
    fn describe(adapters: &[wgpu::AdapterInfo]) -> String {
        if adapters.is_empty() {
            return "wgpu lists no Vulkan, Metal or DirectX 12 adapter (install the GPU's driver, or Mesa's `mesa-vulkan-drivers` for a CPU one)".to_string();
        }
        let listed: Vec<String> = adapters
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{i} {} [{:?}]", a.name, a.device_type))
            .collect();
        format!("wgpu lists {}", listed.join(", "))
    }

    /// The adapters of the graphics APIs Burn's wgpu backend uses here, in wgpu's order.
    fn list() -> Vec<wgpu::AdapterInfo> {
        // No debug flags: with them the Vulkan loader's own complaint about a missing driver
        // is logged as an error above the one-line refusal this listing leads to.
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: graphics_apis(),
            flags: wgpu::InstanceFlags::empty(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        burn::cubecl::future::block_on(instance.enumerate_adapters(graphics_apis()))
            .into_iter()
            .map(|adapter| adapter.get_info())
            .collect()
    }

    /// Burn's device for the adapter `device` means, or why there is none. Burn picks
    /// adapters by kind and rank among that kind, and panics when one is missing, so the
    /// choice is made here first. Burn starts a runtime once per adapter: the device it
    /// returns is kept and handed out again.
    pub fn wgpu_device(device: Device, index: Option<usize>) -> Result<BurnDevice, DeviceError> {
        type Started = HashMap<(DeviceKind, WgpuBackend), BurnDevice>;
        static STARTED: Mutex<Option<Started>> = Mutex::new(None);
        let kind = device_kind(device, index)?;
        let mut started = STARTED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let started = started.get_or_insert_with(HashMap::new);
        if let Some(burn_device) = started.get(&kind) {
            return Ok(burn_device.clone());
        }
        let burn_device = BurnDevice::wgpu_options()
            .device_kind(kind.0.clone())
            .graphics_api(kind.1)
            .init()
            .map_err(|e| DeviceError::Unavailable {
                device: device.to_string(),
                reason: format!("Burn's wgpu runtime did not start: {e}"),
            })?;
        started.insert(kind, burn_device.clone());
        Ok(burn_device)
    }

    /// The adapter `device` means, as Burn selects it: a kind, a rank among the adapters of
    /// that kind on one graphics API, and that API.
    fn device_kind(
        device: Device,
        index: Option<usize>,
    ) -> Result<(DeviceKind, WgpuBackend), DeviceError> {
        let adapters = list();
        let unavailable = |reason: String| DeviceError::Unavailable {
            device: device.to_string(),
            reason,
        };
        let Some(index) = index else {
            return if adapters.is_empty() {
                Err(unavailable(describe(&adapters)))
            } else {
                Ok((DeviceKind::DefaultDevice, WgpuBackend::Auto))
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
            .filter(|a| a.device_type == chosen.device_type && a.backend == chosen.backend)
            .count();
        let api = pinned(chosen.backend);
        match chosen.device_type {
            wgpu::DeviceType::DiscreteGpu => Ok((DeviceKind::DiscreteGpu(rank), api)),
            wgpu::DeviceType::IntegratedGpu => Ok((DeviceKind::IntegratedGpu(rank), api)),
            wgpu::DeviceType::VirtualGpu => Ok((DeviceKind::VirtualGpu(rank), api)),
            wgpu::DeviceType::Cpu if rank == 0 => Ok((DeviceKind::Cpu, api)),
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

impl Device {
    /// Burn's device for inference on this device, checked first: a GPU runtime is only
    /// touched when asked for, so a machine without a driver never loads it.
    pub fn inference(self) -> Result<BurnDevice, DeviceError> {
        match self {
            Device::Cpu => Ok(cpu_device()),
            #[cfg(feature = "cuda")]
            Device::Cuda(index) => {
                self.check()?;
                Ok(BurnDevice::cuda(index))
            }
            #[cfg(feature = "wgpu")]
            Device::Wgpu(index) => adapters::wgpu_device(self, index),
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

    /// Burn's device for training on this device: [`Device::inference`] with autodiff.
    pub fn training(self) -> Result<BurnDevice, DeviceError> {
        self.inference().map(BurnDevice::autodiff)
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
