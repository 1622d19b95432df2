//! jitnode-element (being built).
