//! Ringside: a contact-center CRM that knows who is calling.
//!
//! Flow is one-way: PBX adapters (`telephony`) → call events (`calls`) →
//! outputs (push, activities, routing, stats). `crm` is the domain, `store`
//! the only place with SQL, `http` the API.

pub mod auth;
pub mod calls;
pub mod config;
pub mod crm;
pub mod demo;
pub mod dispatch;
pub mod extensions;
pub mod http;
pub mod import;
pub mod presence;
pub mod push;
pub mod routing;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod telephony;
pub mod text;
