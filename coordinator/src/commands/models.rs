//! `slsg models`: a store's model registry — the categories and their versions, one version's
//! card, promoting a version, rolling back, and the decision history. Forwards to
//! `slsg::registry`; owns the printing.

use anyhow::Context;
use slsg::metrics::ImageScore;
use slsg::registry::{Registry, RegistryError};
use slsg::store::Store;

use super::streams::outln;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Every category with its versions; `*` marks `current`, `-` `previous`.
    List {
        /// The store (`s3://bucket/prefix`, `file:///path` or a path).
        store: String,
    },
    /// A version's card (the current one unless named).
    Show {
        store: String,
        category: String,
        version: Option<String>,
    },
    /// Makes a registered version current (the old current becomes `previous`).
    Promote {
        store: String,
        category: String,
        version: String,
        /// Recorded in the history.
        #[arg(long, default_value = "promoted by an operator")]
        reason: String,
    },
    /// Makes `previous` current again.
    Rollback {
        store: String,
        category: String,
        /// Recorded in the history.
        #[arg(long, default_value = "rolled back by an operator")]
        reason: String,
    },
    /// Every decision about a category: registered, promoted, kept, rolled back.
    History {
        store: String,
        category: String,
        /// One JSON object per line, as stored.
        #[arg(long)]
        json: bool,
    },
}

fn show(value: Option<f64>) -> String {
    value.map_or("—".into(), |v| format!("{v:.4}"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match args.command {
            Command::List { store } => {
                let registry = Registry::new(Store::open_existing(&store)?);
                let categories = registry.categories().await?;
                if categories.is_empty() {
                    outln!("{store}: no registered models");
                }
                for category in categories {
                    let current = registry.current(&category).await?;
                    let previous = registry.previous(&category).await?;
                    outln!("{category}");
                    for card in registry.versions(&category).await? {
                        let mark = if current.as_deref() == Some(card.version.as_str()) {
                            "*"
                        } else if previous.as_deref() == Some(card.version.as_str()) {
                            "-"
                        } else {
                            " "
                        };
                        outln!(
                            "  {mark} {:<40} validation {:>7}  test {} {:>7}  run {}",
                            card.version,
                            show(card.validation_score),
                            ImageScore::auroc_label(card.image_score),
                            show(card.test_image_auroc),
                            card.run
                        );
                    }
                }
            }
            Command::Show {
                store,
                category,
                version,
            } => {
                let registry = Registry::new(Store::open_existing(&store)?);
                let version = match version {
                    Some(version) => version,
                    None => registry.current(&category).await?.with_context(|| {
                        format!("category `{category}` has no current model in {store}")
                    })?,
                };
                let card = known(&registry, &category, &version).await?;
                outln!("{}", serde_json::to_string_pretty(&card)?);
            }
            Command::Promote {
                store,
                category,
                version,
                reason,
            } => {
                let registry = Registry::new(Store::open_existing(&store)?);
                let card = known(&registry, &category, &version).await?;
                let current = registry.current(&category).await?;
                let current_score = match &current {
                    Some(v) => registry.card(&category, v).await?.validation_score,
                    None => None,
                };
                registry
                    .promote(
                        &category,
                        &version,
                        (card.validation_score, current_score),
                        &reason,
                    )
                    .await?;
                outln!(
                    "{category}: `{version}` is current (was {})",
                    current.as_deref().unwrap_or("none")
                );
            }
            Command::Rollback {
                store,
                category,
                reason,
            } => {
                let registry = Registry::new(Store::open_existing(&store)?);
                let version = registry.rollback(&category, &reason).await?;
                outln!("{category}: `{version}` is current again");
            }
            Command::History {
                store,
                category,
                json,
            } => {
                let registry = Registry::new(Store::open_existing(&store)?);
                for entry in registry.history(&category).await? {
                    if json {
                        outln!("{}", serde_json::to_string(&entry)?);
                    } else {
                        outln!(
                            "{} {:<11} {:<40} candidate {:>7} current {:>7}  {}",
                            slsg::job::utc_stamp(entry.unix_ms / 1000),
                            format!("{:?}", entry.decision).to_lowercase(),
                            entry.version,
                            show(entry.candidate_score),
                            show(entry.current_score),
                            entry.reason
                        );
                    }
                }
            }
        }
        Ok(())
    })
}

/// `version`'s card; a version of another category is named as such.
async fn known(
    registry: &Registry,
    category: &str,
    version: &str,
) -> anyhow::Result<slsg::registry::VersionCard> {
    match registry.card(category, version).await {
        Err(e @ RegistryError::UnknownVersion { .. }) => {
            match registry.category_of(version).await? {
                Some(other) => anyhow::bail!("{e}: it is a version of category `{other}`"),
                None => Err(e.into()),
            }
        }
        other => Ok(other?),
    }
}
