//! jitnode-agent (being built).
