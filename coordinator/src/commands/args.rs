//! Arguments several subcommands share (flattened into each): the dataset category, the
//! training config with its overrides, and how to reach a coordinator.

use std::path::PathBuf;

use slsg::config::{Config, ConfigError};
use slsg::data::{Category, DataError, DatasetCache};
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
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load_with(self.config.as_deref(), &self.overrides)
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

/// Where datasets at an object-store URL are copied.
#[derive(clap::Args)]
pub struct CacheArgs {
    /// Where datasets at an object-store URL are copied, one folder per listing (default:
    /// `$SLSG_CACHE`, else `$XDG_CACHE_HOME/slsg`, else `~/.cache/slsg`).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

impl CacheArgs {
    pub fn datasets(&self) -> DatasetCache {
        DatasetCache::new(
            self.cache
                .clone()
                .or_else(default_cache_dir)
                .unwrap_or_else(|| std::env::temp_dir().join("slsg-cache")),
        )
    }
}
