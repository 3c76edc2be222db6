//! The CRM domain: contacts, companies, phones, leads, deals, activities, tasks.
//! Plain types and rules; no SQL (that is `store/`) and no HTTP.

pub mod caller;
pub mod directory;
pub mod index;
pub mod phones;
