pub mod config;
pub mod demo;
pub mod eval;
pub mod fit;
pub mod predict;
mod progress;
pub mod simulate;
pub mod synth;
