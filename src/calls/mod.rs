//! Call events and the call tracker (a pure state machine over them).
