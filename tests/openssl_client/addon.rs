//! The OpenSSL test client as a Node native addon (N-API), for guard's end-to-end test of a TLS
//! library that arrives with `dlopen`: `require("ossladdon.node").llm(BASE, CA_FILE)` makes the
//! client's five LLM calls (`../main.rs`) through the OpenSSL linked into this library, printing
//! one JSON line each. The N-API functions are node's own, resolved when node loads the library,
//! so no binding crate is needed for these five.

#[path = "main.rs"]
#[allow(dead_code)]
mod client;

use std::{
    ffi::{c_char, c_void},
    ptr::null_mut,
};

type Env = *mut c_void;
type Value = *mut c_void;
type CallbackInfo = *mut c_void;
type Callback = unsafe extern "C" fn(Env, CallbackInfo) -> Value;

extern "C" {
    fn napi_create_function(env: Env, name: *const c_char, len: usize, cb: Callback, data: *mut c_void, out: *mut Value) -> i32;
    fn napi_set_named_property(env: Env, object: Value, name: *const c_char, value: Value) -> i32;
    fn napi_get_cb_info(env: Env, info: CallbackInfo, argc: *mut usize, argv: *mut Value, this: *mut Value, data: *mut *mut c_void) -> i32;
    fn napi_get_value_string_utf8(env: Env, value: Value, buf: *mut c_char, size: usize, out: *mut usize) -> i32;
    fn napi_get_undefined(env: Env, out: *mut Value) -> i32;
}

/// The string argument `v` (up to 4 KiB).
unsafe fn string(env: Env, v: Value) -> String {
    let mut buf = vec![0u8; 4096];
    let mut len = 0usize;
    if napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast(), buf.len(), &mut len) != 0 {
        client_fail("llm(BASE, CA_FILE) takes two strings");
    }
    buf.truncate(len);
    String::from_utf8_lossy(&buf).into_owned()
}

fn client_fail(msg: &str) -> ! {
    eprintln!("ossladdon: {msg}");
    std::process::exit(1)
}

unsafe extern "C" fn llm(env: Env, info: CallbackInfo) -> Value {
    let mut argc = 2usize;
    let mut argv = [null_mut(); 2];
    if napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), null_mut(), null_mut()) != 0 || argc < 2 {
        client_fail("llm(BASE, CA_FILE) takes two strings");
    }
    let (base, ca) = (string(env, argv[0]), string(env, argv[1]));
    client::llm(&base, &ca, "");
    let mut undefined = null_mut();
    napi_get_undefined(env, &mut undefined);
    undefined
}

/// Node calls this when it loads the library.
///
/// # Safety
/// Called by node with a valid environment and exports object.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: Env, exports: Value) -> Value {
    let mut f = null_mut();
    if napi_create_function(env, c"llm".as_ptr(), 3, llm, null_mut(), &mut f) != 0
        || napi_set_named_property(env, exports, c"llm".as_ptr(), f) != 0
    {
        client_fail("cannot export llm");
    }
    exports
}
