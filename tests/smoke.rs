//! The shortest path through everything: libffi's ffi_call calls one of our
//! closures (fast entry) and one that needs the generic entry.
use libffi_sys::*;
use std::os::raw::c_void;

unsafe extern "C-unwind" fn add(
    _cif: *mut statictramp::cif::FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    _ud: *mut c_void,
) {
    unsafe {
        let a = *(*args.add(0) as *const i32);
        let b = *(*args.add(1) as *const i32);
        *(ret as *mut ffi_arg) = (a + b) as i64 as ffi_arg;
    }
}

#[test]
fn int_int_int_through_ffi_call() {
    unsafe {
        let mut code: *mut c_void = std::ptr::null_mut();
        let cl =
            statictramp::capi::ffi_closure_alloc(std::mem::size_of::<ffi_closure>(), &mut code);
        assert!(!cl.is_null());
        let mut cif: ffi_cif = std::mem::zeroed();
        let mut at = [&raw mut ffi_type_sint32, &raw mut ffi_type_sint32];
        assert_eq!(
            ffi_prep_cif(
                &mut cif,
                ffi_abi_FFI_DEFAULT_ABI,
                2,
                &raw mut ffi_type_sint32,
                at.as_mut_ptr()
            ),
            ffi_status_FFI_OK
        );
        let st = statictramp::capi::ffi_prep_closure_loc(
            cl.cast(),
            (&raw mut cif).cast(),
            Some(add),
            std::ptr::null_mut(),
            code,
        );
        assert_eq!(st, 0);
        let f = std::mem::transmute::<*mut c_void, extern "C" fn(i32, i32) -> i32>(code);
        assert_eq!(f(2, 40), 42);
        assert_eq!(f(-50, 8), -42);
        let mut ret: ffi_arg = 0;
        let (mut a, mut b) = (7i32, -9i32);
        let mut av = [(&raw mut a).cast::<c_void>(), (&raw mut b).cast()];
        ffi_call(
            &mut cif,
            Some(std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(
                code,
            )),
            (&raw mut ret).cast(),
            av.as_mut_ptr(),
        );
        assert_eq!(ret as i32, -2);
        statictramp::capi::ffi_closure_free(cl);
    }
}
