//! Arguments several subcommands share (flattened into each): the dataset category, and the
//! training config with its overrides.

use std::path::PathBuf;

use slsg::config::{Config, ConfigError};
use slsg::data::{Category, DataError};

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
