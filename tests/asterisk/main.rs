//! End to end through a real Asterisk 22: SIPp plays the carrier and the
//! agents' phones, Asterisk routes the calls, Ringside follows them over AMI
//! (and FastAGI), and the tests assert on what users see — WebSocket frames
//! per agent, the call log, leads, tasks, agent states, recordings. Runs
//! only with `RINGSIDE_TEST_ASTERISK=1` (see `harness::enabled`).

#[path = "../support/mod.rs"]
mod support;

mod harness;

mod agi;
mod calls;
mod dial;
mod leads;
mod load;
mod outage;
mod state;
mod transfers;
