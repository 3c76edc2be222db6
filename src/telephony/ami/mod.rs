//! Asterisk Manager Interface adapter.
