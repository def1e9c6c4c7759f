//! The command line's own surface: every command documents itself, and a wrong command or log
//! format is one line of error. Being an integration test of this package, it also makes
//! `cargo test --workspace` build the `slsg` binary that the end-to-end tests in `tests/` run.

use std::process::{Command, Output};

fn slsg(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slsg"));
    command.args(args).env_remove("SLSG_LOG_FORMAT");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("running slsg")
}

fn commands_listed_by_help() -> Vec<String> {
    let help = slsg(&["--help"], &[]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    text.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

#[test]
fn every_command_has_help() {
    let commands = commands_listed_by_help();
    assert!(commands.len() >= 15, "{commands:?}");
    for command in &commands {
        let help = slsg(&[command, "--help"], &[]);
        assert!(help.status.success(), "`slsg {command} --help` failed");
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("Usage:"),
            "`slsg {command} --help` printed no usage"
        );
    }
}

#[test]
fn wrong_commands_and_log_formats_are_one_line_errors() {
    for (args, envs, needle) in [
        (&["frobnicate"][..], &[][..], "frobnicate"),
        (&["fit", "--no-such-flag"][..], &[][..], "--no-such-flag"),
        (
            &["status"][..],
            &[("SLSG_LOG_FORMAT", "xml")][..],
            "SLSG_LOG_FORMAT",
        ),
    ] {
        let output = slsg(args, envs);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
