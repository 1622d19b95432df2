//! One loaded plugin library ([`Plugin`]) and the instances it makes ([`Instance`]).

use std::ffi::c_void;
use std::fmt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use jitnode_element::ConfigSchema;
use jitnode_plugin::abi::{
    AbiHeader, Bytes, EntryFn, OwnedBuf, PluginApi, Status, ENTRY_SYMBOL, STATUS_BAD_ARGS,
    STATUS_FAILED, STATUS_OK, STATUS_PANICKED,
};
use jitnode_plugin::{Function, LoadArgs};
use serde_json::Value;

use crate::error::NativeError;

/// Checks a plugin's header against this host's ABI. Only the header is read before this
/// passes.
pub fn check_header(header: AbiHeader) -> Result<(), (AbiHeader, AbiHeader)> {
    let want = AbiHeader::current();
    if header == want {
        Ok(())
    } else {
        Err((header, want))
    }
}

/// A plugin library loaded into the process, never unloaded.
///
/// Unloading (`dlclose`) a Rust library is unsound: thread-local destructors, threads it
/// spawned, `'static` data and function pointers it handed out (panic hooks, vtables in
/// values still alive) would point into unmapped memory. So the [`libloading::Library`] is
/// leaked on purpose; a rebuilt library is loaded from a new file name beside it instead.
pub struct Plugin {
    api: &'static PluginApi,
    path: PathBuf,
    type_name: String,
    rust_type: String,
    sdk_version: String,
    functions: Vec<Function>,
    config_schema: Option<Arc<ConfigSchema>>,
}

/// Why one call into a plugin failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The Type rejected the arguments.
    BadArgs(String),
    /// The Type returned an error.
    Failed(String),
    /// The Type panicked; the panic was caught inside the plugin.
    Panicked(String),
    /// The plugin broke the protocol (invalid JSON or UTF-8, unknown status).
    Protocol(String),
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallFailure::BadArgs(m) | CallFailure::Failed(m) => f.write_str(m),
            CallFailure::Panicked(m) => write!(f, "native plugin panicked: {m}"),
            CallFailure::Protocol(m) => f.write_str(m),
        }
    }
}

impl Plugin {
    /// Loads the library at `path` for the Type `type_name` and checks it: ABI header
    /// first, then the function declarations it returns.
    ///
    /// # Safety
    /// Loading a library runs its initialisers, and a library that exports
    /// `jitnode_plugin_entry` with another meaning than [`EntryFn`] is undefined behaviour.
    /// Only load libraries you trust to be jitnode plugins (built with jitnode-plugin).
    pub unsafe fn open(path: &Path, type_name: &str) -> Result<Plugin, NativeError> {
        // SAFETY: forwarded to the caller (trusted library).
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| NativeError::Open {
            type_name: type_name.to_string(),
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // Never unloaded; see the type's doc.
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        // SAFETY: the symbol's type is the ABI's entry type (caller's contract).
        let entry: EntryFn = match unsafe { lib.get::<EntryFn>(ENTRY_SYMBOL) } {
            Ok(sym) => *sym,
            Err(e) => {
                return Err(NativeError::MissingSymbol {
                    type_name: type_name.to_string(),
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
            }
        };
        let protocol = |what: &str, message: String| NativeError::Protocol {
            type_name: type_name.to_string(),
            path: path.to_path_buf(),
            what: what.to_string(),
            message,
        };
        // A query of the table while opening failed: a panic is reported as one, anything
        // else as a broken protocol.
        let query_failed = |what: &'static str, f: CallFailure| match f {
            CallFailure::Panicked(message) => NativeError::Panicked {
                type_name: type_name.to_string(),
                path: path.to_path_buf(),
                what,
                message,
            },
            other => protocol(what, other.to_string()),
        };
        // SAFETY: the entry takes no arguments and returns a pointer (caller's contract).
        let table = unsafe { entry() };
        if table.is_null() {
            return Err(protocol("entry", "returned a null table".into()));
        }
        // The header is frozen at offset 0 in every ABI version: reading just it is fine
        // whatever version the library speaks.
        // SAFETY: non-null, and every version's table starts with an AbiHeader.
        let header = unsafe { table.cast::<AbiHeader>().read() };
        if let Err((found, want)) = check_header(header) {
            return Err(NativeError::AbiMismatch {
                type_name: type_name.to_string(),
                path: path.to_path_buf(),
                found_version: found.abi_version,
                found_size: found.struct_size,
                expected_version: want.abi_version,
                expected_size: want.struct_size,
                sdk: jitnode_plugin::SDK_VERSION,
            });
        }
        // SAFETY: same version and size: the table is a PluginApi living as long as the
        // (leaked) library.
        let api: &'static PluginApi = unsafe { &*table };
        // SAFETY: static text in the table.
        let text = |b: Bytes| String::from_utf8_lossy(unsafe { b.as_slice() }).into_owned();
        let mut plugin = Plugin {
            api,
            path: path.to_path_buf(),
            type_name: type_name.to_string(),
            rust_type: text(api.type_name),
            sdk_version: text(api.sdk_version),
            functions: Vec::new(),
            config_schema: None,
        };
        // SAFETY: `out` is a valid slot; `functions` takes nothing else.
        let list = plugin
            .invoke(|out| unsafe { (api.functions)(out) })
            .map_err(|f| query_failed("functions()", f))?;
        let Value::Array(list) = list else {
            return Err(protocol(
                "functions()",
                "returned JSON that is not an array".into(),
            ));
        };
        for f in &list {
            plugin.functions.push(
                Function::from_json(f)
                    .map_err(|m| protocol("functions()", format!("bad declaration: {m}")))?,
            );
        }
        // SAFETY: `out` is a valid slot; `config_schema` takes nothing else (ABI >= 2,
        // checked with the header above).
        let schema = plugin
            .invoke(|out| unsafe { (api.config_schema)(out) })
            .map_err(|f| query_failed("config_schema()", f))?;
        if !schema.is_null() {
            let compiled = ConfigSchema::new(schema)
                .map_err(|e| protocol("config_schema()", e.to_string()))?;
            plugin.config_schema = Some(Arc::new(compiled));
        }
        Ok(plugin)
    }

    /// The schema of its instances' configs, when the Type declares one.
    pub fn config_schema(&self) -> Option<&Arc<ConfigSchema>> {
        self.config_schema.as_ref()
    }

    /// The library file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Type it serves.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The Rust type the library exports, as `export_type!` named it.
    pub fn rust_type(&self) -> &str {
        &self.rust_type
    }

    /// The jitnode-plugin version the library was built with.
    pub fn sdk_version(&self) -> &str {
        &self.sdk_version
    }

    pub fn functions(&self) -> &[Function] {
        &self.functions
    }

    /// Runs one table function with an output slot, copies its output and frees it with
    /// the library's own `free_buf`, then decodes it by status.
    fn invoke(&self, f: impl FnOnce(*mut OwnedBuf) -> Status) -> Result<Value, CallFailure> {
        let mut out = OwnedBuf::empty();
        let status = f(&mut out);
        let bytes = if out.ptr.is_null() {
            if out.len != 0 {
                return Err(CallFailure::Protocol(
                    "returned a null buffer with a length".into(),
                ));
            }
            Vec::new()
        } else {
            // SAFETY: the plugin filled the slot with a buffer of `len` bytes it allocated.
            let copy = unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec();
            // SAFETY: handed back exactly once, to the library that allocated it.
            unsafe { (self.api.free_buf)(out) };
            copy
        };
        let text = || String::from_utf8_lossy(&bytes).into_owned();
        match status {
            STATUS_OK => serde_json::from_slice(&bytes).map_err(|e| {
                CallFailure::Protocol(format!(
                    "native plugin {} returned invalid JSON: {e}",
                    self.path.display()
                ))
            }),
            STATUS_FAILED => Err(CallFailure::Failed(text())),
            STATUS_BAD_ARGS => Err(CallFailure::BadArgs(text())),
            STATUS_PANICKED => Err(CallFailure::Panicked(text())),
            other => Err(CallFailure::Protocol(format!(
                "native plugin {} returned unknown status {other}: {}",
                self.path.display(),
                text()
            ))),
        }
    }

    /// Makes the runtime object of one element. Blocking: runs the plugin's `load`.
    pub fn instantiate(self: &Arc<Self>, args: &LoadArgs) -> Result<Instance, NativeError> {
        let input = serde_json::to_vec(&args.to_json()).map_err(|e| NativeError::Load {
            type_name: self.type_name.clone(),
            element: args.full_name.clone(),
            message: format!("cannot encode the load input: {e}"),
        })?;
        let mut slot: *mut c_void = std::ptr::null_mut();
        // SAFETY: `input` and `slot` outlive the call.
        let res = self.invoke(|out| unsafe { (self.api.load)(Bytes::new(&input), &mut slot, out) });
        let element = args.full_name.clone();
        match res {
            Ok(_) => match NonNull::new(slot) {
                Some(ptr) => Ok(Instance {
                    plugin: Arc::clone(self),
                    ptr,
                    element,
                }),
                None => Err(NativeError::Protocol {
                    type_name: self.type_name.clone(),
                    path: self.path.clone(),
                    what: "load".into(),
                    message: "reported success but made no instance".into(),
                }),
            },
            Err(CallFailure::Panicked(message)) => Err(NativeError::Panicked {
                type_name: self.type_name.clone(),
                path: self.path.clone(),
                what: "load",
                message,
            }),
            Err(CallFailure::Protocol(message)) => Err(NativeError::Protocol {
                type_name: self.type_name.clone(),
                path: self.path.clone(),
                what: "load".into(),
                message,
            }),
            Err(CallFailure::BadArgs(message) | CallFailure::Failed(message)) => {
                Err(NativeError::Load {
                    type_name: self.type_name.clone(),
                    element,
                    message,
                })
            }
        }
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("type_name", &self.type_name)
            .field("path", &self.path)
            .field("rust_type", &self.rust_type)
            .field("sdk_version", &self.sdk_version)
            .field(
                "functions",
                &self.functions.iter().map(|f| &f.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// One element's runtime object inside a plugin; dropped inside the plugin when this is.
pub struct Instance {
    plugin: Arc<Plugin>,
    ptr: NonNull<c_void>,
    element: String,
}

// SAFETY: the SDK only exports Types that are Send + Sync, and every call goes through
// the plugin's table, which takes `&T` for calls and `T` by value only for the drop.
unsafe impl Send for Instance {}
// SAFETY: as above.
unsafe impl Sync for Instance {}

impl Instance {
    pub fn element(&self) -> &str {
        &self.element
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Calls one function. Blocking: runs plugin code on this thread.
    pub fn call(&self, function: &str, args: &Value) -> Result<Value, CallFailure> {
        let args = serde_json::to_vec(args).map_err(|e| CallFailure::BadArgs(e.to_string()))?;
        let api = self.plugin.api;
        // SAFETY: the instance is alive until drop; inputs outlive the call.
        self.plugin.invoke(|out| unsafe {
            (api.call)(
                self.ptr.as_ptr(),
                Bytes::new(function.as_bytes()),
                Bytes::new(&args),
                out,
            )
        })
    }

    /// Asks the Type to stop this element. Blocking.
    pub fn stop(&self) -> Result<(), CallFailure> {
        let api = self.plugin.api;
        // SAFETY: the instance is alive until drop.
        self.plugin
            .invoke(|out| unsafe { (api.stop)(self.ptr.as_ptr(), out) })
            .map(drop)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: made by this plugin's load and dropped exactly once, here.
        let status = unsafe { (self.plugin.api.drop_instance)(self.ptr.as_ptr()) };
        if status != STATUS_OK {
            tracing::warn!(
                element = %self.element,
                library = %self.plugin.path.display(),
                "native plugin panicked while dropping the element"
            );
        }
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance")
            .field("element", &self.element)
            .field("plugin", &self.plugin.path)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use jitnode_plugin::abi::ABI_VERSION;

    use super::*;

    #[test]
    fn header_check_wants_version_and_size_both() {
        let ok = AbiHeader::current();
        assert!(check_header(ok).is_ok());
        let v = AbiHeader {
            abi_version: ABI_VERSION + 1,
            ..ok
        };
        assert_eq!(check_header(v), Err((v, ok)));
        let s = AbiHeader {
            struct_size: ok.struct_size - 8,
            ..ok
        };
        assert_eq!(check_header(s), Err((s, ok)));
    }
}
