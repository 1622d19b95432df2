//! jitnode-plugin: the SDK for writing a native element Type as a Rust `cdylib`.
//!
//! A plugin author implements [`NativeType`] for one Rust type and exports it with
//! [`export_type!`]. The host (`jitnode-native`) builds the crate, loads the library, checks
//! its ABI version and table size before touching anything else, and then calls it with
//! JSON: `load` once per instance (with the instance's rendered config.json), `call` per
//! function call. Panics are caught at the boundary and come back to the host as errors.
//!
//! ```
//! use jitnode_plugin::{export_type, json, Function, LoadArgs, NativeType, PluginError, Value};
//!
//! /// Instances greet in the language their config.json names.
//! struct Greeter {
//!     greeting: String,
//! }
//!
//! impl NativeType for Greeter {
//!     fn functions() -> Vec<Function> {
//!         vec![Function::new("greet").title("Greet someone").arg("name", Some("Stext"), true)]
//!     }
//!     fn load(args: LoadArgs) -> Result<Self, PluginError> {
//!         let greeting = args.config["greeting"].as_str().unwrap_or("hello").to_string();
//!         Ok(Greeter { greeting })
//!     }
//!     fn call(&self, function: &str, args: Value) -> Result<Value, PluginError> {
//!         match function {
//!             "greet" => {
//!                 let name = args["name"].as_str().ok_or(PluginError::bad_args("name: text"))?;
//!                 Ok(json!(format!("{} {name}", self.greeting)))
//!             }
//!             other => Err(format!("no function {other}").into()),
//!         }
//!     }
//! }
//!
//! export_type!(Greeter);
//! ```
//!
//! The plugin's Cargo.toml needs `crate-type = ["cdylib"]` and must keep the default
//! `panic = "unwind"` (the macro refuses to compile otherwise: with `abort`, a panic in the
//! plugin would kill the whole host).
//!
//! It is NOT the host side (finding, building and loading libraries is `jitnode-native`),
//! has no async runtime, and depends on serde_json only. Streaming chunks are not part of
//! the ABI (version 2): a native function returns one JSON value.

pub mod abi;
mod glue;
mod types;

pub use glue::{api_of, SDK_VERSION};
pub use serde_json::{self, json, Value};
pub use types::{Arg, ErrorKind, Function, LoadArgs, PluginError};

/// A native element Type: what [`export_type!`] exports.
///
/// One value is made per loaded element (instance) by [`NativeType::load`] and shared by
/// concurrent calls, hence `Send + Sync`. If a call panics, the panic is returned to the
/// caller as an error and the value stays in use for later calls: keep state that a panic
/// could leave half-updated behind a `Mutex` (which then reports poisoning).
pub trait NativeType: Sized + Send + Sync + 'static {
    /// The functions every instance offers. e.json's `functionList` on the Type may refine
    /// their argument declarations.
    fn functions() -> Vec<Function>;

    /// The JSON Schema of instances' config.json. The host validates every instance's
    /// rendered config against it (in `jitnode check`, at load and at hot reload) and fills
    /// in its `default`s, so [`NativeType::load`] only sees configs that passed. `None`
    /// (the default): configs are passed as rendered.
    fn config_schema() -> Option<Value> {
        None
    }

    /// Makes the runtime object of one element from its rendered config (validated
    /// against [`NativeType::config_schema`], defaults filled in, when it declares one).
    fn load(args: LoadArgs) -> Result<Self, PluginError>;

    /// Runs one function. `function` is one of [`NativeType::functions`]; `args` have been
    /// checked against its declaration by the host when it declares named arguments.
    fn call(&self, function: &str, args: Value) -> Result<Value, PluginError>;

    /// Called once when the host stops the element, before the value is dropped.
    fn stop(&self) {}
}

/// Exports a [`NativeType`] as this library's plugin entry (`jitnode_plugin_entry`).
/// Use it once per library, at the crate's top level.
#[macro_export]
macro_rules! export_type {
    ($t:ty) => {
        #[cfg(not(panic = "unwind"))]
        compile_error!(
            "jitnode-plugin needs panic = \"unwind\": with panic = \"abort\" a panic in this plugin would abort the whole host"
        );

        /// The plugin entry point read by the jitnode host.
        #[no_mangle]
        pub extern "C" fn jitnode_plugin_entry() -> *const $crate::abi::PluginApi {
            static API: $crate::abi::PluginApi = $crate::api_of::<$t>(stringify!($t));
            &API
        }
    };
}
