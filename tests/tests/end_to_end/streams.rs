//! Output to a reader that has gone (`slsg status | head -4`, `slsg train … 2>&1 | head`): the
//! command finishes its work and exits as it would have, without a panic. The pipe's reading
//! end is closed before the command starts, so every write to it fails.

use std::process::{Command, Output, Stdio};

use slsg_tests::{path, slsg_binary};

enum Closed {
    Stdout,
    Stderr,
}

/// Runs `slsg args` with one standard stream a pipe nobody reads; returns what the other said.
fn run_with_closed(closed: Closed, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = Command::new(slsg_binary());
    command.args(args).env("SLSG_LOG", "warn");
    match closed {
        Closed::Stdout => command.stdout(writer).stderr(Stdio::piped()),
        Closed::Stderr => command.stderr(writer).stdout(Stdio::piped()),
    };
    command.output().unwrap()
}

#[test]
fn a_closed_standard_output_ends_the_output_not_the_command() {
    let printed = run_with_closed(Closed::Stdout, &["config", "--print-default"]);
    let stderr = String::from_utf8_lossy(&printed.stderr);
    assert!(printed.status.success(), "{:?}: {stderr}", printed.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.is_empty(),
        "a closed pipe is not worth a line: {stderr}"
    );

    // A command whose report nobody reads still does all its work.
    let dir = tempfile::tempdir().unwrap();
    let (data, again) = (dir.path().join("data"), dir.path().join("again"));
    let synth = run_with_closed(
        Closed::Stdout,
        &["synth", "--out", path(&data), "--size", "32"],
    );
    let stderr = String::from_utf8_lossy(&synth.stderr);
    assert!(synth.status.success(), "{:?}: {stderr}", synth.status);
    let read = run_with_closed(
        Closed::Stderr,
        &["synth", "--out", path(&again), "--size", "32"],
    );
    assert!(read.status.success());
    let files = |root: &std::path::Path| slsg::walk::files(root, |_| true).unwrap().len();
    assert_eq!(files(&data), files(&again));
}

#[test]
fn a_closed_standard_error_keeps_the_exit_status_of_a_failure() {
    let failed = run_with_closed(
        Closed::Stderr,
        &["config", "--config", "/nonexistent/slsg.toml"],
    );
    assert_eq!(failed.status.code(), Some(1), "{:?}", failed.status);
}
