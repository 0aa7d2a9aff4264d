//! Taking the library's global locks (`std::sync::Mutex` statics): [`lock`]
//! recovers a poisoned lock (as every caller did on its own before), and in
//! a ThreadSanitizer build it tells TSan about the lock.
//!
//! Why TSan must be told: the stable toolchain's std is not instrumented.
//! `Mutex::lock`'s uncontended path is inlined into this crate and so
//! instrumented, but a contended lock is acquired inside std
//! (`lock_contended`), where TSan sees no acquire; every access the lock
//! protects then looks like a race with the previous holder's (measured:
//! most of 344 reports, 210 of them in tests/calls.rs; docs/design.md,
//! "Sanitizers and Miri").
//! `__tsan_acquire` after locking and `__tsan_release` before unlocking, on
//! the mutex's address, add the edge std's own code makes. Only in builds
//! with `-Zsanitizer=thread` (cfg `statictramp_tsan`, set by build.rs;
//! scripts/sanitize); other builds get std's guard unchanged.
#![allow(unsafe_code)]

use std::sync::{Mutex, MutexGuard};

/// The guard [`lock`] returns.
#[cfg(not(statictramp_tsan))]
pub(crate) type Guard<'a, T> = MutexGuard<'a, T>;

/// Locks `m`, recovering it if poisoned.
#[cfg(not(statictramp_tsan))]
pub(crate) fn lock<T>(m: &Mutex<T>) -> Guard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(statictramp_tsan)]
pub(crate) use tsan::{Guard, lock};

#[cfg(statictramp_tsan)]
mod tsan {
    use super::{Mutex, MutexGuard};
    use std::mem::ManuallyDrop;
    use std::ops::{Deref, DerefMut};
    use std::os::raw::c_void;

    // The ThreadSanitizer runtime's annotation interface
    // (compiler-rt/include/sanitizer/tsan_interface.h), linked into every
    // program built with -Zsanitizer=thread.
    unsafe extern "C" {
        fn __tsan_acquire(addr: *mut c_void);
        fn __tsan_release(addr: *mut c_void);
    }

    fn addr<T>(m: &Mutex<T>) -> *mut c_void {
        std::ptr::from_ref(m).cast_mut().cast()
    }

    /// std's guard, with a TSan release on the mutex before it unlocks.
    pub(crate) struct Guard<'a, T> {
        inner: ManuallyDrop<MutexGuard<'a, T>>,
        mutex: &'a Mutex<T>,
    }

    pub(crate) fn lock<T>(m: &Mutex<T>) -> Guard<'_, T> {
        let inner = m.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: an annotation only: TSan records an acquire on this
        // address (the mutex, which outlives the guard); no memory is
        // accessed.
        unsafe { __tsan_acquire(addr(m)) };
        Guard {
            inner: ManuallyDrop::new(inner),
            mutex: m,
        }
    }

    impl<T> Drop for Guard<'_, T> {
        fn drop(&mut self) {
            // SAFETY: as in `lock`: a release on the mutex's address,
            // before the unlock below makes the data available to the next
            // holder.
            unsafe { __tsan_release(addr(self.mutex)) };
            // SAFETY: `inner` is dropped here only, once.
            unsafe { ManuallyDrop::drop(&mut self.inner) };
        }
    }

    impl<T> Deref for Guard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.inner
        }
    }

    impl<T> DerefMut for Guard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            &mut self.inner
        }
    }
}
