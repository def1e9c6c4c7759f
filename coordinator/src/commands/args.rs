//! Arguments several subcommands share (flattened into each): the dataset category, the
//! training config with its overrides, how to reach a coordinator, the cache folder and the
//! GPU backends' tuning.

use std::path::PathBuf;

use slsg::backend::{AutotuneLevel, Device, DeviceError, GpuSettings, configure_gpu};
use slsg::config::{Config, ConfigError};
use slsg::data::{Category, DataError, DatasetCache};
use slsg::job::ClusterConfig;
use slsg::store::default_cache_dir;
use slsg_worker::{Access, ClientTls, LinkError};

#[derive(clap::Args)]
pub struct CategoryArgs {
    /// Dataset root holding the category folders.
    #[arg(long)]
    pub dataset: PathBuf,
    #[arg(long)]
    pub category: String,
}

impl CategoryArgs {
    pub fn open(&self) -> Result<Category, DataError> {
        Category::open(&self.dataset, &self.category)
    }
}

#[derive(clap::Args)]
pub struct ConfigArgs {
    /// A TOML config (the defaults for everything it does not set).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config field, e.g. `--set segnet.steps=500` (repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub overrides: Vec<String>,
}

impl ConfigArgs {
    /// The training config; a cluster config given to `--config` by mistake is named as one,
    /// with the command that trains it.
    pub fn load(&self) -> anyhow::Result<Config> {
        Config::load_with(self.config.as_deref(), &self.overrides).map_err(|error| {
            match (&error, self.config.as_deref()) {
                (ConfigError::Parse { .. }, Some(path)) if ClusterConfig::load(path).is_ok() => {
                    anyhow::anyhow!(
                        "{}: a cluster config ([run], [[dataset]]), not a training config: \
                         train it with `slsg train {0}` (its [training] section is what \
                         --config takes)",
                        path.display()
                    )
                }
                _ => error.into(),
            }
        })
    }
}

/// How a command reaches a coordinator: the token from `SLSG_TOKEN`, the CA it trusts, and
/// whether plain text may carry the token off this machine.
#[derive(clap::Args)]
pub struct AccessArgs {
    /// The CA certificate (PEM) that signed the coordinator's, for an `https://` coordinator.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Send the token over plain `http://` to another machine (only on a network encrypted
    /// below, such as a service mesh).
    #[arg(long)]
    pub allow_plaintext: bool,
}

impl AccessArgs {
    pub fn access(&self) -> Result<Access, LinkError> {
        Ok(Access {
            token: token_from_env(),
            tls: self.tls_ca.as_deref().map(ClientTls::read).transpose()?,
            allow_plaintext: self.allow_plaintext,
        })
    }
}

/// The bearer token from `SLSG_TOKEN` (unset or empty: none).
pub fn token_from_env() -> Option<String> {
    std::env::var("SLSG_TOKEN").ok().filter(|t| !t.is_empty())
}

/// The cache folder of this machine.
#[derive(clap::Args)]
pub struct CacheArgs {
    /// The cache folder: datasets copied from an object store (one folder per listing),
    /// registered models downloaded for `predict`, and the GPU backends' tuning results
    /// (default: `$SLSG_CACHE`, else `$XDG_CACHE_HOME/slsg`, else `~/.cache/slsg`).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

impl CacheArgs {
    pub fn root(&self) -> PathBuf {
        self.cache
            .clone()
            .or_else(default_cache_dir)
            .unwrap_or_else(|| std::env::temp_dir().join("slsg-cache"))
    }

    pub fn datasets(&self) -> DatasetCache {
        DatasetCache::new(self.root())
    }
}

/// How the GPU backends (wgpu, cuda) tune their kernels.
#[derive(clap::Args)]
pub struct GpuArgs {
    /// How hard the GPU backends benchmark kernel variants the first time a shape runs:
    /// minimal, balanced, extensive or full. Results are kept in the cache folder's `gpu/`, so
    /// a shape is tuned once per device, not once per job.
    #[arg(long, value_name = "LEVEL", env = "SLSG_AUTOTUNE", default_value_t = AutotuneLevel::default(), value_parser = parse_autotune)]
    pub autotune: AutotuneLevel,
}

fn parse_autotune(text: &str) -> Result<AutotuneLevel, String> {
    text.parse()
}

impl GpuArgs {
    /// Applies the GPU settings when a device is a GPU, then refuses a device this build or
    /// machine cannot run, before any work is given to it. The settings come first: checking a
    /// wgpu device starts its runtime, which reads CubeCL's configuration once and for all.
    pub fn prepare(&self, devices: &[Device], cache: &CacheArgs) -> Result<(), DeviceError> {
        if devices.iter().any(|d| d.is_gpu()) {
            configure_gpu(&GpuSettings {
                autotune: self.autotune,
                cache: cache.root().join("gpu"),
            })?;
        }
        for device in devices {
            device.check()?;
        }
        Ok(())
    }
}
