//! Getting memory from the kernel: reserved address ranges, anonymous data
//! pages, and executable copies of the in-image trampoline template.
//!
//! Executable pages are only ever created by mapping a *file* privately with
//! `PROT_READ | PROT_EXEC`: either the library image itself (the pages that
//! hold the template; only a file that no one but root or this user can
//! write, opened when the library is loaded) or a memfd holding a copy of
//! the template that was sealed against writing before it was mapped
//! (src/map/source.rs: which, and why). Nothing here asks for
//! writable and executable at once, and no executable page ever has a
//! writable alias. Every mapped copy is compared byte for byte with the
//! in-image template before a slot in it is used.
#![allow(unsafe_code)]

use crate::layout::{TEMPLATE_ALIGN, TEMPLATE_BYTES};
use std::io;

mod source;
pub(crate) use source::lock_for_fork;
#[cfg(feature = "capi")]
pub(crate) use source::open_image_at_load;
pub use source::{Source, current_source};

unsafe extern "C" {
    /// First byte of the template (asm/<arch>/table.S), TEMPLATE_BYTES long.
    static statictramp_template: u8;
}

/// The in-image template bytes.
pub fn template() -> &'static [u8] {
    // SAFETY: the assembly defines `statictramp_template` as TEMPLATE_BYTES of
    // read-only code in the image; it is never written, so a shared slice of
    // it lives as long as the program.
    unsafe { std::slice::from_raw_parts(&raw const statictramp_template, TEMPLATE_BYTES) }
}

/// Reserves `len` bytes of address space, aligned to `align`, with no access
/// and no commit charge. Returns the aligned base.
pub fn reserve(len: usize, align: usize) -> io::Result<usize> {
    let total = len + align;
    // SAFETY: a fresh anonymous PROT_NONE mapping at an address the kernel
    // chooses; it aliases nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let start = p as usize;
    let base = start.next_multiple_of(align);
    // Give back the unaligned head and the tail beyond `len`.
    // SAFETY: both ranges are inside the mapping just made and owned by us.
    unsafe {
        if base > start {
            libc::munmap(start as *mut _, base - start);
        }
        let end = base + len;
        if start + total > end {
            libc::munmap(end as *mut _, start + total - end);
        }
    }
    Ok(base)
}

/// Gives back a range obtained from `reserve` that holds nothing in use
/// (nothing to do for an empty one: i386's template copies fill their
/// whole stride).
pub fn release(addr: usize, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: callers pass a range from `reserve` (whole, or a part they
    // never mapped anything into) that nothing uses.
    unsafe { libc::munmap(addr as *mut _, len) };
}

/// Makes `[addr, addr + len)` of a reserved range readable and writable
/// (never executable): closure records.
pub fn commit_rw(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: callers pass a page-aligned range inside a range they reserved
    // with `reserve`; it holds no code.
    let r = unsafe { libc::mprotect(addr as *mut _, len, libc::PROT_READ | libc::PROT_WRITE) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks for transparent huge pages on a committed read-write range (a hint:
/// ignored where THP is off or unsupported).
pub fn advise_huge(addr: usize, len: usize) {
    // SAFETY: madvise(MADV_HUGEPAGE) only changes how the kernel backs the
    // anonymous range we committed; it cannot change its contents or
    // permissions.
    unsafe { libc::madvise(addr as *mut _, len, libc::MADV_HUGEPAGE) };
}

/// Maps one copy of the template at `addr` (inside a reserved range,
/// TEMPLATE_ALIGN-aligned), read + execute, and verifies it. Returns where
/// the copy came from: the image file where the rules of src/map/source.rs
/// allow it, else the sealed memfd.
pub fn map_template_copy(addr: usize) -> io::Result<Source> {
    debug_assert_eq!(addr % TEMPLATE_ALIGN, 0);
    crate::fork::register();
    let mut sources = source::lock();
    if !source::memfd_only() {
        if let Some((fd, offset)) = sources.image() {
            match map_verified(addr, fd, offset) {
                Ok(()) => return Ok(sources.used(Source::Image { offset })),
                // The file no longer holds the template (changed on disk):
                // it is never used again.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => sources.image_differs(),
                // Not mappable now (e.g. out of map count): this copy comes
                // from the memfd, the next one tries the image again.
                Err(_) => {}
            }
        }
    }
    let fd = sources.memfd()?;
    match map_verified(addr, fd, 0) {
        Ok(()) => Ok(sources.used(Source::Memfd)),
        Err(e) => {
            if e.kind() == io::ErrorKind::InvalidData {
                sources.memfd_differs();
            }
            Err(e)
        }
    }
}

/// Maps `fd` at `offset` over `addr` and checks the bytes; on mismatch the
/// range is turned back into an inaccessible reservation.
fn map_verified(addr: usize, fd: libc::c_int, offset: u64) -> io::Result<()> {
    // A 32-bit off_t cannot name an offset past 2 GiB: refused rather
    // than truncated (the memfd serves instead).
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "template offset past off_t"))?;
    // SAFETY: `addr` is inside a range reserved by us and not in use, so
    // MAP_FIXED replaces only our own PROT_NONE reservation. The mapping is
    // private, read + execute, of a file that is either an image only root
    // or this user can write or a write-sealed memfd: no writable alias
    // exists.
    let p = unsafe {
        libc::mmap(
            addr as *mut _,
            TEMPLATE_BYTES,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
            fd,
            offset,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the mapping just made is TEMPLATE_BYTES long and readable.
    let copy = unsafe { std::slice::from_raw_parts(addr as *const u8, TEMPLATE_BYTES) };
    if copy == template() {
        return Ok(());
    }
    // SAFETY: same range as above; back to an inaccessible reservation.
    unsafe {
        libc::mmap(
            addr as *mut _,
            TEMPLATE_BYTES,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
            -1,
            0,
        );
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "mapped trampoline code differs from the in-image template",
    ))
}

/// The system page size (getauxval(AT_PAGESZ)), never assumed.
pub fn page_size() -> usize {
    // SAFETY: getauxval has no preconditions.
    let p = unsafe { libc::getauxval(libc::AT_PAGESZ) } as usize;
    if p == 0 { 4096 } else { p }
}
