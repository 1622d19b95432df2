//! The C ABI between the host and a plugin library, version [`ABI_VERSION`].
//!
//! A plugin exports one symbol, [`ENTRY_SYMBOL`] (`jitnode_plugin_entry`), an
//! [`EntryFn`] returning a pointer to a static [`PluginApi`]. The host reads only the
//! [`AbiHeader`] at its start, checks `abi_version == ABI_VERSION` and
//! `struct_size == size_of::<PluginApi>()`, and touches nothing else when they differ.
//! The header's layout is frozen for every future version; everything after it may change
//! with the version number.
//!
//! Data crosses as UTF-8 JSON bytes with an explicit length:
//! - inputs ([`Bytes`]) are owned by the host and only borrowed for the duration of a call;
//! - outputs ([`OwnedBuf`]) are allocated by the plugin and handed back to its
//!   [`PluginApi::free_buf`] once the host has copied them (each side frees only what its
//!   own allocator made).
//!
//! Every function returns a [`Status`]. On [`STATUS_OK`] the output buffer holds JSON; on
//! any other status it holds a UTF-8 message. Panics never cross the boundary: the
//! SDK's glue catches them and returns [`STATUS_PANICKED`].
//!
//! Plugin authors normally never touch this module: [`export_type!`](crate::export_type)
//! fills it in. It is public so that the host can read it and so that test fixtures can
//! build deliberately broken plugins.

use std::ffi::c_void;

/// The ABI version this SDK speaks. Bumped on any change after [`AbiHeader`].
///
/// - 1: functions, load, call, stop, drop_instance, free_buf;
/// - 2: adds [`PluginApi::config_schema`] (the JSON Schema of instance configs). A host
///   speaking 2 refuses a version-1 library (rebuild it; nothing else changes for it).
pub const ABI_VERSION: u32 = 2;

/// The one symbol a plugin exports (NUL-terminated, as `dlsym` wants it).
pub const ENTRY_SYMBOL: &[u8] = b"jitnode_plugin_entry\0";

/// The type of [`ENTRY_SYMBOL`]: returns a pointer to a `'static` [`PluginApi`].
pub type EntryFn = unsafe extern "C" fn() -> *const PluginApi;

/// Outcome of a call across the boundary.
pub type Status = i32;
/// Success: the output buffer holds JSON.
pub const STATUS_OK: Status = 0;
/// The plugin reported an error: the output buffer holds a UTF-8 message.
pub const STATUS_FAILED: Status = 1;
/// The arguments did not fit: the output buffer holds a UTF-8 message.
pub const STATUS_BAD_ARGS: Status = 2;
/// The plugin panicked; the panic was caught. The output holds the panic message.
pub const STATUS_PANICKED: Status = 3;

/// The frozen first field of [`PluginApi`]: read before anything else.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiHeader {
    pub abi_version: u32,
    /// `size_of::<PluginApi>()` as the plugin was compiled.
    pub struct_size: u32,
}

impl AbiHeader {
    /// The header of this SDK's [`PluginApi`].
    pub const fn current() -> AbiHeader {
        AbiHeader {
            abi_version: ABI_VERSION,
            struct_size: std::mem::size_of::<PluginApi>() as u32,
        }
    }
}

/// Borrowed bytes (input from the host, or static text from the plugin).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Bytes {
    pub ptr: *const u8,
    pub len: usize,
}

impl Bytes {
    /// Borrows `b`; the caller keeps `b` alive for as long as the other side may read it.
    pub const fn new(b: &[u8]) -> Bytes {
        Bytes {
            ptr: b.as_ptr(),
            len: b.len(),
        }
    }

    /// The bytes as a slice.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that stay alive and unchanged for `'a`
    /// (true during a call for inputs made with [`Bytes::new`] by the caller).
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the caller guarantees ptr/len describe a live slice.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Bytes allocated by the plugin; the host returns them through [`PluginApi::free_buf`].
#[repr(C)]
#[derive(Debug)]
pub struct OwnedBuf {
    pub ptr: *mut u8,
    pub len: usize,
    pub cap: usize,
}

impl OwnedBuf {
    /// An empty buffer (nothing to free).
    pub const fn empty() -> OwnedBuf {
        OwnedBuf {
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    /// Hands a vector's allocation over the boundary.
    pub fn from_vec(v: Vec<u8>) -> OwnedBuf {
        let mut v = std::mem::ManuallyDrop::new(v);
        OwnedBuf {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            cap: v.capacity(),
        }
    }

    /// Takes back a buffer made by [`OwnedBuf::from_vec`] in this same library.
    ///
    /// # Safety
    /// `self` must come from `from_vec` of the same allocator and not be freed yet.
    pub unsafe fn into_vec(self) -> Vec<u8> {
        if self.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: the caller guarantees these are the parts of a leaked Vec<u8>.
        unsafe { Vec::from_raw_parts(self.ptr, self.len, self.cap) }
    }
}

/// The function table a plugin exports. `instance` pointers come from `load` and stay
/// valid until `drop_instance`; the host may call `call` from several threads at once
/// (the SDK requires the Type to be `Send + Sync`).
#[repr(C)]
pub struct PluginApi {
    pub header: AbiHeader,
    /// Version of jitnode-plugin the library was built with (UTF-8, static).
    pub sdk_version: Bytes,
    /// Rust name of the exported Type (UTF-8, static), for messages.
    pub type_name: Bytes,
    /// Writes the JSON array of function declarations to `out`.
    pub functions: unsafe extern "C" fn(out: *mut OwnedBuf) -> Status,
    /// `input`: JSON `{"fullName", "typeName", "dir", "config"}`. On success writes the
    /// new instance to `*instance` and `null` JSON to `out`.
    pub load: unsafe extern "C" fn(
        input: Bytes,
        instance: *mut *mut c_void,
        out: *mut OwnedBuf,
    ) -> Status,
    /// Runs `function` (UTF-8 name) with `args` (JSON); writes the JSON result to `out`.
    pub call: unsafe extern "C" fn(
        instance: *const c_void,
        function: Bytes,
        args: Bytes,
        out: *mut OwnedBuf,
    ) -> Status,
    /// Asks the instance to stop; writes `null` JSON to `out` on success.
    pub stop: unsafe extern "C" fn(instance: *const c_void, out: *mut OwnedBuf) -> Status,
    /// Drops an instance. Returns [`STATUS_PANICKED`] if its destructor panicked.
    pub drop_instance: unsafe extern "C" fn(instance: *mut c_void) -> Status,
    /// Frees a buffer this library allocated.
    pub free_buf: unsafe extern "C" fn(buf: OwnedBuf),
    /// Writes the JSON Schema of instance configs to `out`, or `null` when the Type
    /// declares none (since ABI 2).
    pub config_schema: unsafe extern "C" fn(out: *mut OwnedBuf) -> Status,
}

// SAFETY: the only pointers in the table are to static text and functions; the table is
// immutable once made, so sharing it between threads is fine.
unsafe impl Sync for PluginApi {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for PluginApi {}

/// [`PluginApi::free_buf`] for libraries built with this SDK.
///
/// # Safety
/// `buf` must come from [`OwnedBuf::from_vec`] in this library and not be freed yet.
pub unsafe extern "C" fn free_buf(buf: OwnedBuf) {
    // SAFETY: forwarded caller contract. Freeing cannot panic.
    drop(unsafe { buf.into_vec() });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sits_at_offset_zero_and_carries_the_size() {
        let h = AbiHeader::current();
        assert_eq!(h.abi_version, ABI_VERSION);
        assert_eq!(h.struct_size as usize, std::mem::size_of::<PluginApi>());
        assert_eq!(std::mem::offset_of!(PluginApi, header), 0);
        assert_eq!(std::mem::size_of::<AbiHeader>(), 8);
    }

    #[test]
    fn owned_buf_round_trips_and_empty_is_free() {
        let b = OwnedBuf::from_vec(b"{\"a\":1}".to_vec());
        assert_eq!(b.len, 7);
        // SAFETY: made just above by from_vec.
        assert_eq!(unsafe { b.into_vec() }, b"{\"a\":1}");
        // SAFETY: an empty buffer owns nothing.
        assert!(unsafe { OwnedBuf::empty().into_vec() }.is_empty());
    }
}
