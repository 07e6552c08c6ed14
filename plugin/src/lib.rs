//! Latent Trio: a CLAP and VST3 instrument that plays drums, bass and melody
//! from MusicVAE models, in time with the host.

pub mod bridge;
pub mod engine;
pub mod knobs;
pub mod pattern;
pub mod sequencer;
