//! The shortest path through everything: an int(int, int) closure (served by
//! a register-argument entry) called directly and by libffi's ffi_call, and
//! a double(long double, int) closure whose long double argument only the
//! generic entry and the Rust dispatcher handle.
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

unsafe extern "C-unwind" fn scale_ld(
    _cif: *mut statictramp::cif::FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    _ud: *mut c_void,
) {
    unsafe {
        // The x87 80-bit value: 8 bytes of mantissa (explicit integer bit)
        // and 2 of sign and exponent; this reads the exact small integers
        // the test passes.
        let p = *args.add(0) as *const u8;
        let mant = u64::from_le_bytes(std::slice::from_raw_parts(p, 8).try_into().unwrap());
        let se = u16::from_le_bytes([*p.add(8), *p.add(9)]);
        let exp = i32::from(se & 0x7fff) - 16383;
        let mut v = (mant as f64) * 2f64.powi(exp - 63);
        if se & 0x8000 != 0 {
            v = -v;
        }
        let k = *(*args.add(1) as *const i32);
        *(ret as *mut f64) = v * f64::from(k);
    }
}

#[test]
fn long_double_takes_the_generic_entry_through_ffi_call() {
    unsafe {
        let mut code: *mut c_void = std::ptr::null_mut();
        let cl =
            statictramp::capi::ffi_closure_alloc(std::mem::size_of::<ffi_closure>(), &mut code);
        assert!(!cl.is_null());
        let mut cif: ffi_cif = std::mem::zeroed();
        let mut at = [&raw mut ffi_type_longdouble, &raw mut ffi_type_sint32];
        assert_eq!(
            ffi_prep_cif(
                &mut cif,
                ffi_abi_FFI_DEFAULT_ABI,
                2,
                &raw mut ffi_type_double,
                at.as_mut_ptr()
            ),
            ffi_status_FFI_OK
        );
        let st = statictramp::capi::ffi_prep_closure_loc(
            cl.cast(),
            (&raw mut cif).cast(),
            Some(scale_ld),
            std::ptr::null_mut(),
            code,
        );
        assert_eq!(st, 0);
        // 6.0 as an x87 long double in its 16-byte slot.
        let mut ld = [0u8; 16];
        ld[..8].copy_from_slice(&(0xc000_0000_0000_0000u64).to_le_bytes());
        ld[8..10].copy_from_slice(&(16383u16 + 2).to_le_bytes());
        let mut k = -7i32;
        let mut ret = 0f64;
        let mut av = [ld.as_mut_ptr().cast::<c_void>(), (&raw mut k).cast()];
        ffi_call(
            &mut cif,
            Some(std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(
                code,
            )),
            (&raw mut ret).cast(),
            av.as_mut_ptr(),
        );
        assert_eq!(ret, -42.0);
        statictramp::capi::ffi_closure_free(cl);
    }
}
