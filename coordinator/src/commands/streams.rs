//! The commands' standard output and error: a reader that goes away early (`slsg status | head`,
//! `slsg train … 2>&1 | head`) ends what is printed there, never the command or its work.
//!
//! `println!` panics when its stream is closed; `outln!`, `out!` and `errln!` stop writing to
//! that stream instead. A training run outlives the `head` its output was piped into.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// One of the two standard streams, and whether it can still be written to.
pub struct Stream {
    open: AtomicBool,
    which: Which,
}

enum Which {
    Out,
    Err,
}

pub static STDOUT: Stream = Stream {
    open: AtomicBool::new(true),
    which: Which::Out,
};

pub static STDERR: Stream = Stream {
    open: AtomicBool::new(true),
    which: Which::Err,
};

impl Stream {
    /// Writes `text` (a whole line, or a table of lines) unless the stream has failed before.
    /// The first failure closes it for the rest of the process: a closed pipe silently, any
    /// other error (a full disk under a redirect) with one line on standard error.
    pub fn write(&self, text: std::fmt::Arguments) {
        if !self.open.load(Ordering::Relaxed) {
            return;
        }
        let written = match self.which {
            Which::Out => write_to(&mut io::stdout().lock(), text),
            Which::Err => write_to(&mut io::stderr().lock(), text),
        };
        if let Err(error) = written {
            self.open.store(false, Ordering::Relaxed);
            if error.kind() != io::ErrorKind::BrokenPipe && matches!(self.which, Which::Out) {
                STDERR.write(format_args!(
                    "warning: standard output failed ({error}); the rest of it is dropped\n"
                ));
            }
        }
    }
}

fn write_to(stream: &mut impl Write, text: std::fmt::Arguments) -> io::Result<()> {
    stream.write_fmt(text)?;
    stream.flush()
}

/// `println!` that stops printing, not the command, once standard output is closed.
macro_rules! outln {
    () => {
        $crate::commands::streams::STDOUT.write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::commands::streams::STDOUT.write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that stops printing, not the command, once standard output is closed.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::commands::streams::STDOUT.write(format_args!($($arg)*))
    };
}

/// `eprintln!` that stops printing, not the command, once standard error is closed.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::commands::streams::STDERR.write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};
