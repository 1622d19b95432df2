//! jitnode-host (being built).
