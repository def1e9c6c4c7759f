//! `slsg dataset`: datasets at an object-store URL — uploading a dataset folder (only what
//! changed since the last push), and listing a URL's categories with their fingerprints.
//! Forwards to `slsg::data`; owns the printing.

use std::path::PathBuf;

use anyhow::Context;
use slsg::data::{Dataset, Layout, discover_categories, is_url, push};
use slsg::store::Store;

use super::streams::outln;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Uploads a dataset folder (category folders inside) to a URL such as
    /// `s3://bucket/datasets/mvtec_ad`; files unchanged since the last push are skipped.
    Push {
        /// The dataset folder.
        folder: PathBuf,
        /// Where it goes (`s3://bucket/prefix` or `file:///path`).
        url: String,
    },
    /// The categories at a dataset URL with their listing fingerprints.
    List {
        /// The dataset URL.
        url: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    match args.command {
        Command::Push { folder, url } => {
            if !is_url(std::path::Path::new(&url)) {
                anyhow::bail!("`{url}` is not a URL: push to s3://bucket/prefix or file:///path");
            }
            if !folder.is_dir() {
                anyhow::bail!("{}: no such dataset folder", folder.display());
            }
            // Refused before anything is uploaded: a folder with no category in it would be
            // a dataset URL nothing can train from.
            if discover_categories(&folder)?.is_empty() {
                if Layout::detect(&folder).is_ok() {
                    anyhow::bail!(
                        "{}: a category folder, not a dataset folder: push the folder that \
                         holds the categories ({})",
                        folder.display(),
                        folder.parent().unwrap_or(&folder).display()
                    );
                }
                anyhow::bail!(
                    "{}: no category folders in it (MVTec AD, MVTec LOCO or BTAD categories, \
                     or folders of images)",
                    folder.display()
                );
            }
            let store = Store::open(&url)?;
            let runtime = tokio::runtime::Runtime::new()?;
            let (sent, unchanged) = runtime
                .block_on(push(&folder, &store, threads))
                .with_context(|| format!("pushing {} to {url}", folder.display()))?;
            outln!("{url}: {sent} files uploaded, {unchanged} unchanged");
        }
        Command::List { url } => {
            let dataset = Dataset::open(std::path::Path::new(&url))?;
            for category in dataset.categories(&["all".to_string()])? {
                let fingerprints = dataset.fingerprints(&category, threads)?;
                outln!(
                    "{category}\t{}",
                    fingerprints.listing.unwrap_or(fingerprints.all)
                );
            }
        }
    }
    Ok(())
}
