//! Getting memory from the kernel: reserved address ranges, anonymous data
//! pages, and executable copies of the in-image trampoline template.
//!
//! Executable pages are only ever created by mapping a *file* privately with
//! `PROT_READ | PROT_EXEC`: either the library image itself (the pages that
//! hold the template) or a memfd holding a copy of the template that was
//! sealed against writing before it was mapped. Nothing here asks for
//! writable and executable at once, and no executable page ever has a
//! writable alias. Every mapped copy is compared byte for byte with the
//! in-image template before a slot in it is used.
#![allow(unsafe_code)]

use crate::layout::{TEMPLATE_ALIGN, TEMPLATE_BYTES};
use std::ffi::CStr;
use std::io;
use std::sync::Mutex;

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

/// Gives back a range obtained from `reserve` that holds nothing in use.
pub fn release(addr: usize, len: usize) {
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

/// Where executable copies of the template come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The library (or executable) file, at this page-aligned offset.
    Image { offset: u64 },
    /// A sealed memfd holding a copy of the template.
    Memfd,
}

/// The file descriptor and offset copies are mapped from, found once.
struct TemplateFile {
    fd: libc::c_int,
    offset: u64,
    source: Source,
}

static TEMPLATE_FILE: Mutex<Option<TemplateFile>> = Mutex::new(None);

/// The template file's lock, held across fork (src/fork.rs).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(TEMPLATE_FILE.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Maps one copy of the template at `addr` (inside a reserved range,
/// TEMPLATE_ALIGN-aligned), read + execute, and verifies it. Returns where
/// the copy came from. `STATICTRAMP_TEMPLATE=memfd` in the environment skips
/// the image file (for tests, and where the library file may be replaced
/// while the process runs).
pub fn map_template_copy(addr: usize) -> io::Result<Source> {
    debug_assert_eq!(addr % TEMPLATE_ALIGN, 0);
    crate::fork::register();
    let mut guard = TEMPLATE_FILE.lock().unwrap_or_else(|e| e.into_inner());
    // libc's getenv, not std::env: the standard library's environment lock
    // is not released in a child forked while another thread held it.
    // SAFETY: a NUL-terminated name; the result is only read, at once.
    let memfd_only = unsafe {
        let v = libc::getenv(c"STATICTRAMP_TEMPLATE".as_ptr());
        !v.is_null() && std::ffi::CStr::from_ptr(v).to_bytes() == b"memfd"
    };
    // Try the cached source first, then the image file, then a memfd.
    for attempt in 0..3 {
        let file = match (attempt, guard.take()) {
            (0, Some(f)) => f,
            (0, None) => continue,
            (1, _) if memfd_only => continue,
            (1, _) => match open_image() {
                Ok(f) => f,
                Err(_) => continue,
            },
            _ => make_memfd()?,
        };
        match map_verified(addr, file.fd, file.offset) {
            Ok(()) => {
                let source = file.source;
                *guard = Some(file);
                return Ok(source);
            }
            Err(e) => {
                // SAFETY: `fd` is a descriptor this module opened and owns.
                unsafe { libc::close(file.fd) };
                if attempt == 2 {
                    return Err(e);
                }
            }
        }
    }
    Err(io::Error::other("no source for trampoline code"))
}

/// The source copies currently come from (for `statictramp check`).
pub fn current_source() -> Option<Source> {
    TEMPLATE_FILE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|f| f.source)
}

/// Maps `fd` at `offset` over `addr` and checks the bytes; on mismatch the
/// range is turned back into an inaccessible reservation.
fn map_verified(addr: usize, fd: libc::c_int, offset: u64) -> io::Result<()> {
    // SAFETY: `addr` is inside a range reserved by us and not in use, so
    // MAP_FIXED replaces only our own PROT_NONE reservation. The mapping is
    // private, read + execute, of a file that is either our own image or a
    // write-sealed memfd: no writable alias exists.
    let p = unsafe {
        libc::mmap(
            addr as *mut _,
            TEMPLATE_BYTES,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
            fd,
            offset as libc::off_t,
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

/// Finds the file holding the template and its file offset, from the ELF
/// program headers of the loaded object that contains it.
fn open_image() -> io::Result<TemplateFile> {
    let addr = template().as_ptr() as usize;
    let mut found: Option<(std::ffi::CString, u64)> = None;
    let mut ctx = (addr, &mut found);
    // SAFETY: the callback only reads the program headers the loader hands
    // it, for the duration of the call.
    unsafe {
        libc::dl_iterate_phdr(Some(phdr_callback), (&raw mut ctx).cast());
    }
    let (name, offset) =
        found.ok_or_else(|| io::Error::other("template not in any loaded object"))?;
    if offset % page_size() as u64 != 0 {
        return Err(io::Error::other("template is not page aligned in its file"));
    }
    // SAFETY: `name` is a NUL-terminated path.
    let fd = unsafe { libc::open(name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // The name may not be the file that is mapped (a program started as
    // `ld.so ./prog` has /proc/self/exe = ld.so; a relative name after a
    // chdir). Mapping past its end would fault on the first read, so the
    // file must at least be long enough; the byte comparison does the rest.
    // SAFETY: fstat into a zeroed stat on our own descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut st) } != 0
        || (st.st_size as u64) < offset + TEMPLATE_BYTES as u64
    {
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        return Err(io::Error::other(
            "the object's file is shorter than the template offset",
        ));
    }
    Ok(TemplateFile {
        fd,
        offset,
        source: Source::Image { offset },
    })
}

unsafe extern "C" fn phdr_callback(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the `ctx` tuple of `open_image`, alive during
    // dl_iterate_phdr; `info` and its headers are valid for this call.
    unsafe {
        let (addr, found) = &mut *(data as *mut (usize, &mut Option<(std::ffi::CString, u64)>));
        let info = &*info;
        for i in 0..info.dlpi_phnum as usize {
            let ph = &*info.dlpi_phdr.add(i);
            if ph.p_type != libc::PT_LOAD {
                continue;
            }
            let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
            if *addr >= start && *addr + TEMPLATE_BYTES <= start + ph.p_filesz as usize {
                let name = if info.dlpi_name.is_null() || *info.dlpi_name == 0 {
                    // The main program: its file is /proc/self/exe.
                    c"/proc/self/exe".to_owned()
                } else {
                    CStr::from_ptr(info.dlpi_name).to_owned()
                };
                **found = Some((name, ph.p_offset + (*addr - start) as u64));
                return 1;
            }
        }
    }
    0
}

/// A memfd holding one copy of the template, sealed so that it can never be
/// written again, before it is ever mapped executable.
fn make_memfd() -> io::Result<TemplateFile> {
    const MFD_EXEC: libc::c_uint = 0x10; // Linux 6.3: executable memfd, needed where vm.memfd_noexec=1
    let name = c"statictramp-template";
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: plain syscalls on a NUL-terminated name.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 {
        // SAFETY: as above; kernels before 6.3 reject MFD_EXEC with EINVAL.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let close_err = |fd| {
        let e = io::Error::last_os_error();
        // SAFETY: `fd` is ours.
        unsafe { libc::close(fd) };
        e
    };
    let bytes = template();
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: writing from a valid slice into our memfd (not mapped anywhere).
        let n = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        if n <= 0 {
            return Err(close_err(fd));
        }
        done += n as usize;
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our own descriptor.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
        return Err(close_err(fd));
    }
    Ok(TemplateFile {
        fd,
        offset: 0,
        source: Source::Memfd,
    })
}

/// The system page size (getauxval(AT_PAGESZ)), never assumed.
pub fn page_size() -> usize {
    // SAFETY: getauxval has no preconditions.
    let p = unsafe { libc::getauxval(libc::AT_PAGESZ) } as usize;
    if p == 0 { 4096 } else { p }
}
