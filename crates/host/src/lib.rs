//! jitnode-host: the runtime that brings an element app to life.
//!
//! It takes a resolved [`AppTree`](jitnode_element::AppTree), finds each element's loader
//! (the nearest `backendBundleEntry` up its type chain, looked up in a [`Registry`] of
//! built-in loaders named `builtin:<name>`), starts the `beforeHandleRequest` and then the
//! `afterAppInit` elements, loads the others on demand at their first lookup, lets elements
//! call each other's named JSON functions (optionally streaming chunks), and stops them in
//! dependency order. With `--watch`, a [`Reloader`] fed by [`watch`] applies edits to the
//! running app, restarting only what they change. Before an element's loader sees its
//! config, the config is validated against its Type's schema (see [`Loader::config_schema`]);
//! an element whose config fails is not started, and a reload that breaks one is rejected.
//! [`Readiness`] tells a started element apart from one that can work (a robot that is
//! connected, not merely loaded): elements report into it, `run` and `/readyz` read it.
//!
//! It is NOT for parsing e.json, resolving chains, rendering templates or building `dist/`
//! (that is `jitnode-element` and `jitnode-dist`), nor for any particular element's business
//! (the DingTalk robot and the AI agent are loaders registered from their own crates).

mod app;
mod echo;
mod error;
mod functions;
mod loader;
mod open;
pub mod readiness;
mod reload;
mod runtime;
mod schema;
mod signal;
pub mod watch;

pub use app::{App, AppHandle, LoadedElement, StartReport, StopReport, DEFAULT_STOP_DEADLINE};
pub use echo::EchoLoader;
pub use error::{CallError, LoadError, LookupError};
pub use functions::{declared_functions, ArgSpec, FunctionSpec};
pub use jitnode_element::{ConfigSchema, ConfigSchemas, Element, Violation, ViolationKind};
pub use loader::{app_dir_of, loader_fn, LoadContext, Loader, Registry, BUILTIN_SCHEME, DATA_DIR};
pub use open::OpenError;
pub use readiness::{Check, Readiness, ReadinessReport, ReadinessReporter};
pub use reload::{ReloadError, ReloadReport, Reloader};
pub use runtime::{BoxError, BoxFuture, ChunkSink, ElementRuntime, FnRuntime, FunctionError};
pub use schema::loader_schemas;
pub use signal::ShutdownSignal;
pub use watch::{WatchError, WatchMode, WatchOptions};
