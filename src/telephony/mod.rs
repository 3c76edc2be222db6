//! PBX adapters: turn protocol traffic into PBX-neutral call events.

pub mod ami;
