//! Asterisk Manager Interface adapter: the wire codec, the event mapper that
//! turns AMI events into PBX-neutral call events, transcript replay, the TCP
//! client, and a fake AMI server for tests and demos.
//!
//! Nothing outside this module knows AMI exists. Entry points:
//! - `replay(ami, times, region)` / `run_replay_file(path, region, out)`:
//!   `ringside ami-replay FILE`.
//! - `client::start(ClientConfig::from_config(&config)?…)` → `(AmiClient,
//!   CallFeed)`: live call events and finished calls from a running Asterisk;
//!   product actions (click-to-call, transfer, recording, pause, spy) are
//!   methods on `AmiClient`.
//! - `fake::FakeAmi::start(fake::demo_script(..))`: a simulated Asterisk for
//!   the demo and for tests.

pub mod cdr;
pub mod client;
pub mod codec;
pub mod fake;
pub mod mapper;
pub mod members;
pub mod replay;
pub mod synth;

pub use replay::{replay, replay_with, run_replay_file, run_replay_file_with};
