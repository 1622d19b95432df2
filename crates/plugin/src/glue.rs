//! The generic `extern "C"` functions behind [`export_type!`](crate::export_type): they
//! decode JSON inputs, call the [`NativeType`], encode its result, and catch every panic.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;

use crate::abi::{
    free_buf, AbiHeader, Bytes, OwnedBuf, PluginApi, Status, STATUS_OK, STATUS_PANICKED,
};
use crate::types::{Function, LoadArgs, PluginError};
use crate::NativeType;

/// The version of this SDK, recorded in every plugin built with it.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The function table for `T`; `type_name` is how messages name it.
/// [`export_type!`](crate::export_type) puts this in a static and exports a pointer to it.
pub const fn api_of<T: NativeType>(type_name: &'static str) -> PluginApi {
    PluginApi {
        header: AbiHeader::current(),
        sdk_version: Bytes::new(SDK_VERSION.as_bytes()),
        type_name: Bytes::new(type_name.as_bytes()),
        functions: functions::<T>,
        load: load::<T>,
        call: call::<T>,
        stop: stop::<T>,
        drop_instance: drop_instance::<T>,
        free_buf,
        config_schema: config_schema::<T>,
    }
}

/// Text of a caught panic. The payload is dropped here too, and a payload whose own drop
/// panics is leaked instead, so nothing escapes.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let msg = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    };
    if let Err(inner) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(inner);
    }
    msg
}

/// Runs `f` with panics caught and writes its JSON result or error message to `out`.
///
/// AssertUnwindSafe: after a panic the only state that may be left half-updated is the
/// Type's own, which it shares with later calls exactly as a Rust caller would see it
/// after catching a panic; that is documented on [`NativeType`].
fn respond(out: *mut OwnedBuf, f: impl FnOnce() -> Result<Value, PluginError>) -> Status {
    let (status, bytes) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => match serde_json::to_vec(&v) {
            Ok(b) => (STATUS_OK, b),
            Err(e) => {
                let e = PluginError::failed(format!("could not encode the result: {e}"));
                (e.status(), e.message().as_bytes().to_vec())
            }
        },
        Ok(Err(e)) => (e.status(), e.message().as_bytes().to_vec()),
        Err(payload) => (STATUS_PANICKED, panic_message(payload).into_bytes()),
    };
    if !out.is_null() {
        // SAFETY: the host passes a pointer to a writable OwnedBuf slot; it reads and
        // frees what we put there.
        unsafe { out.write(OwnedBuf::from_vec(bytes)) };
    }
    status
}

unsafe extern "C" fn functions<T: NativeType>(out: *mut OwnedBuf) -> Status {
    respond(out, || {
        Ok(Value::Array(
            T::functions().iter().map(Function::to_json).collect(),
        ))
    })
}

unsafe extern "C" fn config_schema<T: NativeType>(out: *mut OwnedBuf) -> Status {
    respond(out, || Ok(T::config_schema().unwrap_or(Value::Null)))
}

unsafe extern "C" fn load<T: NativeType>(
    input: Bytes,
    instance: *mut *mut c_void,
    out: *mut OwnedBuf,
) -> Status {
    respond(out, || {
        if instance.is_null() {
            return Err(PluginError::failed(
                "load: the host passed no instance slot",
            ));
        }
        // SAFETY: the host keeps `input` alive for the duration of this call.
        let bytes = unsafe { input.as_slice() };
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| PluginError::bad_args(format!("load input is not JSON: {e}")))?;
        let args = LoadArgs::from_json(v).map_err(PluginError::bad_args)?;
        let t = T::load(args)?;
        let ptr = Box::into_raw(Box::new(t)).cast::<c_void>();
        // SAFETY: checked non-null above; the host owns the slot.
        unsafe { instance.write(ptr) };
        Ok(Value::Null)
    })
}

unsafe extern "C" fn call<T: NativeType>(
    instance: *const c_void,
    function: Bytes,
    args: Bytes,
    out: *mut OwnedBuf,
) -> Status {
    respond(out, || {
        if instance.is_null() {
            return Err(PluginError::failed("call: no instance"));
        }
        // SAFETY: the host keeps both inputs alive for the duration of this call.
        let (name, args) = unsafe { (function.as_slice(), args.as_slice()) };
        let name = std::str::from_utf8(name)
            .map_err(|_| PluginError::bad_args("the function name is not UTF-8"))?;
        let args: Value = serde_json::from_slice(args)
            .map_err(|e| PluginError::bad_args(format!("arguments are not JSON: {e}")))?;
        // SAFETY: `instance` came from `load::<T>` and the host drops it only after its
        // last call; T: Sync makes shared use from several threads fine.
        let t = unsafe { &*instance.cast::<T>() };
        t.call(name, args)
    })
}

unsafe extern "C" fn stop<T: NativeType>(instance: *const c_void, out: *mut OwnedBuf) -> Status {
    respond(out, || {
        if instance.is_null() {
            return Err(PluginError::failed("stop: no instance"));
        }
        // SAFETY: as in `call`.
        let t = unsafe { &*instance.cast::<T>() };
        t.stop();
        Ok(Value::Null)
    })
}

unsafe extern "C" fn drop_instance<T: NativeType>(instance: *mut c_void) -> Status {
    if instance.is_null() {
        return STATUS_OK;
    }
    // SAFETY: `instance` came from Box::into_raw in `load::<T>`; the host drops it once.
    let boxed = unsafe { Box::from_raw(instance.cast::<T>()) };
    match catch_unwind(AssertUnwindSafe(move || drop(boxed))) {
        Ok(()) => STATUS_OK,
        Err(payload) => {
            drop(panic_message(payload));
            STATUS_PANICKED
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ptr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::abi::{STATUS_BAD_ARGS, STATUS_FAILED};

    static DROPS: AtomicUsize = AtomicUsize::new(0);

    struct Counter {
        start: i64,
    }

    impl NativeType for Counter {
        fn functions() -> Vec<Function> {
            vec![Function::new("add").arg("n", Some("Numeric"), true)]
        }
        fn load(args: LoadArgs) -> Result<Self, PluginError> {
            match args.config.get("start").and_then(Value::as_i64) {
                Some(start) => Ok(Counter { start }),
                None => Err(PluginError::bad_args(format!(
                    "{}: config needs a number \"start\"",
                    args.full_name
                ))),
            }
        }
        fn call(&self, function: &str, args: Value) -> Result<Value, PluginError> {
            match function {
                "add" => {
                    let n = args["n"].as_i64().ok_or("n must be a number")?;
                    Ok(json!(self.start + n))
                }
                "explode" => panic!("kaboom {}", self.start),
                other => Err(format!("no function {other}").into()),
            }
        }
    }

    impl Drop for Counter {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }

    static API: PluginApi = api_of::<Counter>("Counter");

    fn take(api: &PluginApi, out: OwnedBuf) -> String {
        let _ = api;
        // SAFETY: made by this library's respond().
        String::from_utf8(unsafe { out.into_vec() }).unwrap()
    }

    fn load_with(config: Value) -> (Status, *mut c_void, String) {
        let input = serde_json::to_vec(&json!({
            "fullName": "t.c", "typeName": "t.cType", "dir": "/x", "config": config
        }))
        .unwrap();
        let mut inst = ptr::null_mut();
        let mut out = OwnedBuf::empty();
        // SAFETY: valid input, slot and out pointers.
        let st = unsafe { (API.load)(Bytes::new(&input), &mut inst, &mut out) };
        (st, inst, take(&API, out))
    }

    /// Calls `f` on `inst` and checks the status and text that come back.
    #[track_caller]
    fn assert_call(inst: *mut c_void, f: &str, args: &[u8], want: (Status, &str)) {
        assert_eq!(call_with(inst, f, args), (want.0, want.1.to_string()));
    }

    fn call_with(inst: *mut c_void, f: &str, args: &[u8]) -> (Status, String) {
        let mut out = OwnedBuf::empty();
        // SAFETY: inst came from load; inputs live across the call.
        let st = unsafe { (API.call)(inst, Bytes::new(f.as_bytes()), Bytes::new(args), &mut out) };
        (st, take(&API, out))
    }

    #[test]
    fn the_table_drives_a_type_end_to_end() {
        assert_eq!(API.header, AbiHeader::current());
        // SAFETY: static text made by api_of.
        assert_eq!(unsafe { API.type_name.as_slice() }, b"Counter");

        let mut out = OwnedBuf::empty();
        // SAFETY: out is a valid slot.
        assert_eq!(unsafe { (API.functions)(&mut out) }, STATUS_OK);
        let list: Value = serde_json::from_str(&take(&API, out)).unwrap();
        assert_eq!(
            list,
            json!([{"name": "add", "args": [{"name": "n", "dataType": "Numeric", "required": true}]}])
        );

        let (st, inst, msg) = load_with(json!({"start": 40}));
        assert_eq!((st, msg.as_str()), (STATUS_OK, "null"));
        assert_call(inst, "add", b"{\"n\":2}", (STATUS_OK, "42"));
        assert_call(
            inst,
            "add",
            b"{\"n\":\"x\"}",
            (STATUS_FAILED, "n must be a number"),
        );
        let (st, msg) = call_with(inst, "add", b"{oops");
        assert_eq!(st, STATUS_BAD_ARGS);
        assert!(msg.starts_with("arguments are not JSON"), "{msg}");

        let before = DROPS.load(Ordering::SeqCst);
        // SAFETY: inst came from load and is dropped once.
        assert_eq!(unsafe { (API.drop_instance)(inst) }, STATUS_OK);
        assert_eq!(DROPS.load(Ordering::SeqCst), before + 1);
    }

    #[test]
    fn panics_come_back_as_errors_and_the_instance_stays_usable() {
        let (st, inst, _) = load_with(json!({"start": 7}));
        assert_eq!(st, STATUS_OK);
        assert_call(inst, "explode", b"null", (STATUS_PANICKED, "kaboom 7"));
        assert_call(inst, "add", b"{\"n\":1}", (STATUS_OK, "8"));
        // SAFETY: inst came from load and is dropped once.
        unsafe { (API.drop_instance)(inst) };
    }

    #[test]
    fn load_errors_leave_no_instance() {
        let (st, inst, msg) = load_with(json!({}));
        assert_eq!(st, STATUS_BAD_ARGS);
        assert!(inst.is_null());
        assert_eq!(msg, "t.c: config needs a number \"start\"");

        let mut out = OwnedBuf::empty();
        let mut inst = ptr::null_mut();
        // SAFETY: valid pointers; the input is deliberately not JSON.
        let st = unsafe { (API.load)(Bytes::new(b"[1"), &mut inst, &mut out) };
        assert_eq!(st, STATUS_BAD_ARGS);
        assert!(take(&API, out).starts_with("load input is not JSON"));
    }
}
