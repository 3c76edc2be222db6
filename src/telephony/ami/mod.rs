//! Asterisk Manager Interface adapter: the wire codec, the event mapper that
//! turns AMI events into PBX-neutral call events, transcript replay, the TCP
//! client, and a fake AMI server for tests and demos.
//!
//! Nothing outside this module knows AMI exists.

pub mod client;
pub mod codec;
pub mod fake;
pub mod mapper;
pub mod replay;
pub mod synth;

pub use replay::{replay, run_replay_file};
