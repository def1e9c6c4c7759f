pub mod demo;
pub mod eval;
pub mod simulate;
pub mod synth;
