//! Ringside: a contact-center CRM that knows who is calling.
//!
//! Flow is one-way: PBX adapters (`telephony`) → call events (`calls`) →
//! outputs (push, activities, routing, stats). `crm` is the domain, `store`
//! the only place with SQL, `http` the API.

pub mod calls;
pub mod config;
pub mod crm;
pub mod telephony;
