//! The `slsg` command-line tool: thin handlers that parse arguments and forward to the library.

mod commands;

use std::sync::LazyLock;

use clap::{Parser, Subcommand};

use commands::streams::errln;

/// `slsg --version`: the release and the backends this build can train on.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (backends: {})",
        env!("CARGO_PKG_VERSION"),
        slsg::backend::built_backends().join(", ")
    )
});

#[derive(Parser)]
#[command(
    name = "slsg",
    version = VERSION.as_str(),
    about = "Train and evaluate SLSG anomaly detectors for many product categories"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the deterministic synthetic dataset (MVTec AD and MVTec LOCO AD layouts).
    Synth(commands::synth::Args),
    /// Write simulated anomalies of one category as PNG pairs and a contact sheet.
    Simulate(commands::simulate::Args),
    /// Score a folder of anomaly maps against a dataset's ground truth.
    Eval(commands::eval::Args),
    /// Train both stages for one category in this process and evaluate on its test split.
    Fit(commands::fit::Args),
    /// Score images with a trained model: TIFF maps, heat-map overlays, scores.csv.
    Predict(commands::predict::Args),
    /// Check a config, print the defaults, or count the networks' parameters.
    Config(commands::config::Args),
    /// Print the job graph a cluster config expands to.
    Plan(commands::plan::Args),
    /// Train a cluster config with the coordinator and its workers in this process.
    Train(commands::train::Args),
    /// The coordinator service: a config's run, runs submitted later, scheduled retraining.
    Coordinator(commands::serve::Args),
    /// Send a cluster config to a running coordinator service.
    Submit(commands::submit::Args),
    /// Check which categories need retraining (now, or on the config's schedule).
    Retrain(commands::retrain::Args),
    /// The model registry of a store: list, show, promote, rollback, history.
    Models(commands::models::Args),
    /// Datasets at an object-store URL: push a folder, list its categories.
    Dataset(commands::dataset::Args),
    /// Lease and run jobs from a coordinator, one worker per device.
    Worker(commands::worker::Args),
    /// Draw a finished run's report (`report.html`) again from its store.
    Report(commands::report::Args),
    /// Show a coordinator's jobs, progress and leaderboards.
    Status(commands::status::Args),
    /// The whole job on the embedded default: synthetic data, local store, two in-process workers.
    Demo(commands::demo::Args),
}

/// How log lines are written: `SLSG_LOG_FORMAT=text` (the default) or `json` (one object per
/// line, for log collectors). Up to the `info` level ractor's spans stay off unless `SLSG_LOG`
/// names ractor: every line logged inside an actor would otherwise start with its internal id
/// (`Actor{id="0.0"}:`), which names nothing a user knows; `SLSG_LOG=debug` shows them.
fn init_logging() -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::{Directive, LevelFilter};
    let spec = match std::env::var("SLSG_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec,
        Ok(_) | Err(std::env::VarError::NotPresent) => "info".into(),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err("SLSG_LOG: not UTF-8 (use a level such as `info` or `debug`)".into());
        }
    };
    let mut filter = EnvFilter::try_new(&spec).map_err(|e| {
        format!(
            "SLSG_LOG: `{spec}` is not a log filter ({e}); use a level such as `info` or `debug`"
        )
    })?;
    if !spec.contains("ractor")
        && filter
            .max_level_hint()
            .is_none_or(|level| level <= LevelFilter::INFO)
    {
        let quiet_actors: Directive = "ractor=warn"
            .parse()
            .expect("a constant, valid filter directive");
        filter = filter.add_directive(quiet_actors);
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("SLSG_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().flatten_event(true).init(),
        Ok("text") | Ok("") | Err(std::env::VarError::NotPresent) => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        Ok(other) => {
            return Err(format!(
                "SLSG_LOG_FORMAT: `{other}` is neither `text` nor `json`"
            ));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err("SLSG_LOG_FORMAT: not UTF-8 (use `text` or `json`)".into());
        }
    }
    Ok(())
}

/// `RAYON_NUM_THREADS` sizes the CPU backend's thread pool, and rayon ignores a value it cannot
/// read: a typo would silently take every core instead of the cap the user asked for. Empty is
/// unset, as for rayon.
fn check_thread_cap() -> Result<(), String> {
    const VARIABLE: &str = "RAYON_NUM_THREADS";
    let most = slsg::config::MAX_THREADS;
    match std::env::var(VARIABLE) {
        Err(std::env::VarError::NotPresent) => Ok(()),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!(
            "{VARIABLE}: not UTF-8 (use a whole number from 0, every core, to {most})"
        )),
        Ok(value) if value.is_empty() => Ok(()),
        Ok(value) => match value.parse::<usize>() {
            Ok(threads) if threads <= most => Ok(()),
            _ => Err(format!(
                "{VARIABLE}: `{value}` is not a thread count; use a whole number from 0, every \
                 core, to {most}"
            )),
        },
    }
}

fn main() -> std::process::ExitCode {
    slsg::backend::default_to_cpu();
    if let Err(e) = init_logging().and_then(|()| check_thread_cap()) {
        errln!("error: {e}");
        return std::process::ExitCode::from(2);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // clap's report is the error (its first paragraph, e.g. a list of missing
            // arguments), then usage and a hint: the first paragraph on one line instead.
            let text = e.render().to_string();
            let paragraph: Vec<&str> = text
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            errln!(
                "error: {}",
                paragraph.join(" ").trim_start_matches("error: ")
            );
            return std::process::ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Synth(args) => commands::synth::run(args),
        Command::Simulate(args) => commands::simulate::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Fit(args) => commands::fit::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Config(args) => commands::config::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Coordinator(args) => commands::serve::run(args),
        Command::Submit(args) => commands::submit::run(args),
        Command::Retrain(args) => commands::retrain::run(args),
        Command::Models(args) => commands::models::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Dataset(args) => commands::dataset::run(args),
        Command::Worker(args) => commands::worker::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Demo(args) => commands::demo::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            let error = commands::with_hint(error);
            // One line, whatever a dependency's message holds, for logs and for people; a cause
            // that its wrapper's message already quotes (object_store's do) is not repeated.
            let mut text = String::new();
            for cause in error.chain() {
                let cause = cause.to_string();
                if !text.contains(&cause) {
                    if !text.is_empty() {
                        text.push_str(": ");
                    }
                    text.push_str(&cause);
                }
            }
            errln!(
                "error: {}",
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            std::process::ExitCode::FAILURE
        }
    }
}
