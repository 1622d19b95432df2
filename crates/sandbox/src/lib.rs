//! jitnode-sandbox (being built).
