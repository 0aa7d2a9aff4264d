//! Where executable copies of the template come from — the file of the
//! loaded object that holds it (the image) or a sealed memfd — and keeping
//! hold of their descriptors.
//!
//! The rules (docs/design.md, "Where copies come from"):
//! - The image is opened when the library is loaded (`open_image_at_load`,
//!   called by the ELF constructor in src/capi.rs), while the name the
//!   dynamic loader reports still means what it meant to the loader: a
//!   relative name (`LD_PRELOAD=./lib.so`, `ld.so ./prog`, `dlopen("./x.so")`)
//!   resolves against the directory it was loaded from, not the one the
//!   program has moved to by the first growth. Where that constructor is not
//!   linked (a Rust program using the crate without the `capi` feature),
//!   the image is opened at the first growth, and only by an absolute name.
//! - Copies come from the image only while it is a regular file owned by
//!   root or by the effective user that no one else may write (no group or
//!   other write bit): a file others can write could change after it was
//!   verified, and a private mapping shows later writes to every page not
//!   yet copied. Anything else, and `STATICTRAMP_TEMPLATE=memfd`: a memfd
//!   sealed against every change before its first mapping.
//! - A descriptor number is ours only while its file is the one we opened:
//!   a program may close every descriptor (`close_range`, `closefrom`,
//!   `dup2`) and get the number back for a file of its own. Before each use
//!   `fstat` must show the same device and inode (which cannot be reused
//!   while our mappings keep the file alive), and the memfd must still carry
//!   its seals; otherwise the number is forgotten, never closed, and the
//!   source opened again (the image by its name, accepted only if it is
//!   still the same file). A descriptor once kept is never closed at all,
//!   even when it still names our file: the program may have opened that
//!   same file on that number. Only a descriptor opened in the same call is
//!   closed when it is refused.
#![allow(unsafe_code)]

use crate::layout::TEMPLATE_BYTES;
use crate::lock::Guard;
use crate::map::page_size;
use std::ffi::{CStr, CString};
use std::io;
use std::sync::Mutex;

/// Where executable copies of the template come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The library (or executable) file, at this page-aligned offset.
    Image { offset: u64 },
    /// A sealed memfd holding a copy of the template.
    Memfd,
}

/// The seals the memfd gets before it is first mapped, and must still have
/// whenever a copy is mapped from it: no write, no size change, no unseal.
const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// A file we opened: the descriptor (while it is ours) and the file's
/// identity, to recognise it again.
struct Held {
    fd: Option<libc::c_int>,
    dev: u64,
    ino: u64,
}

impl Held {
    /// Keeps `fd`, just opened by us, with the identity `st` of its file.
    fn new(fd: libc::c_int, st: &libc::stat64) -> Held {
        Held {
            fd: Some(fd),
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }

    fn is(&self, st: &libc::stat64) -> bool {
        st.st_dev == self.dev && st.st_ino == self.ino
    }

    /// The descriptor and its file's current status, if the descriptor is
    /// still open on our file. Otherwise the number is the program's now
    /// (or nobody's): forget it, never close it.
    fn check(&mut self) -> Option<(libc::c_int, libc::stat64)> {
        let fd = self.fd?;
        match fstat(fd) {
            Some(st) if self.is(&st) => Some((fd, st)),
            _ => {
                self.fd = None;
                None
            }
        }
    }
}

/// The image file.
enum Image {
    /// Not looked for yet.
    Unknown,
    /// Found: the name it was opened by, the template's offset in it, and
    /// the descriptor while it is ours.
    Found {
        name: CString,
        offset: u64,
        file: Held,
    },
    /// Not used: none found, refused by the rules above, or it did not hold
    /// the template when mapped.
    Refused,
}

/// Every source, found once and checked before each use.
pub(super) struct Sources {
    image: Image,
    memfd: Option<Held>,
    /// Where the last copy came from.
    last: Option<Source>,
}

static SOURCES: Mutex<Sources> = Mutex::new(Sources {
    image: Image::Unknown,
    memfd: None,
    last: None,
});

pub(super) fn lock() -> Guard<'static, Sources> {
    crate::lock::lock(&SOURCES)
}

/// The sources' lock, held across fork (src/fork.rs).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(lock())
}

/// The source copies currently come from (for `statictramp check`).
pub fn current_source() -> Option<Source> {
    lock().last
}

/// Whether `STATICTRAMP_TEMPLATE=memfd` asks to skip the image file (for
/// tests, and where the library file may be replaced while the process
/// runs). libc's getenv, not std::env: the standard library's environment
/// lock is not released in a child forked while another thread held it.
pub(super) fn memfd_only() -> bool {
    // SAFETY: a NUL-terminated name; the result is only read, at once.
    unsafe {
        let v = libc::getenv(c"STATICTRAMP_TEMPLATE".as_ptr());
        !v.is_null() && CStr::from_ptr(v).to_bytes() == b"memfd"
    }
}

/// Opens the image file now, at library load (see the module comment).
/// Called by the ELF constructor in src/capi.rs.
#[cfg_attr(not(feature = "capi"), allow(dead_code))]
pub(crate) fn open_image_at_load() {
    if memfd_only() {
        return;
    }
    let mut s = lock();
    if let Image::Unknown = s.image {
        s.image = find_image(true);
    }
}

impl Sources {
    /// The image's descriptor and the template's offset in it, if copies may
    /// be mapped from it now.
    pub(super) fn image(&mut self) -> Option<(libc::c_int, u64)> {
        if let Image::Unknown = self.image {
            self.image = find_image(false);
        }
        let Image::Found { name, offset, file } = &mut self.image else {
            return None;
        };
        let offset = *offset;
        if let Some((fd, st)) = file.check() {
            if trusted(&st, offset) {
                return Some((fd, offset));
            }
            // Made writable by others, or shrunk, since it was opened.
            self.image = Image::Refused;
            return None;
        }
        // The program closed our descriptor: the file again, by its name,
        // only if the name still leads to the same file.
        match open_trusted(name, offset) {
            Ok((fd, st)) if file.is(&st) => {
                file.fd = Some(fd);
                Some((fd, offset))
            }
            Ok((fd, _)) => {
                close(fd);
                self.image = Image::Refused;
                None
            }
            Err(_) => {
                self.image = Image::Refused;
                None
            }
        }
    }

    /// The image did not hold the template when mapped: never use it again.
    /// Its descriptor is forgotten, not closed (it passed the identity
    /// check, but the program may have opened the same file on it).
    pub(super) fn image_differs(&mut self) {
        self.image = Image::Refused;
    }

    /// The sealed memfd's descriptor, made on first use, and again if the
    /// program took our descriptor's number.
    pub(super) fn memfd(&mut self) -> io::Result<libc::c_int> {
        if let Some(h) = &mut self.memfd {
            if let Some((fd, _)) = h.check() {
                // SAFETY: fcntl(F_GET_SEALS) only reads the descriptor's seals.
                let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
                if seals >= 0 && seals & SEALS == SEALS {
                    return Ok(fd);
                }
            }
            self.memfd = None;
        }
        let (fd, st) = make_memfd()?;
        self.memfd = Some(Held::new(fd, &st));
        Ok(fd)
    }

    /// A copy from the memfd did not hold the template (it cannot, sealed):
    /// forget it (not closed, as above); the next copy makes a new one.
    pub(super) fn memfd_differs(&mut self) {
        self.memfd = None;
    }

    /// Records that a copy came from `source`, and returns it.
    pub(super) fn used(&mut self, source: Source) -> Source {
        self.last = Some(source);
        source
    }
}

fn fstat(fd: libc::c_int) -> Option<libc::stat64> {
    // SAFETY: a zeroed stat is a valid value of the plain C struct.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes only into `st`; any descriptor number is safe to
    // ask about.
    (unsafe { libc::fstat64(fd, &mut st) } == 0).then_some(st)
}

fn close(fd: libc::c_int) {
    // SAFETY: callers pass a descriptor they opened in the same call and
    // have not handed to anyone.
    unsafe { libc::close(fd) };
}

/// Whether copies may be mapped from the file with status `st`: a regular
/// file owned by root or by the effective user, writable by no one else,
/// long enough to hold the template at `offset` (mapping past the end would
/// fault on the first read).
fn trusted(st: &libc::stat64, offset: u64) -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    st.st_mode & libc::S_IFMT == libc::S_IFREG
        && (st.st_uid == 0 || st.st_uid == euid)
        && st.st_mode & (libc::S_IWGRP | libc::S_IWOTH) == 0
        && st.st_size as u64 >= offset + TEMPLATE_BYTES as u64
}

/// Opens `name` read-only; the descriptor and the file's status if the
/// file is `trusted`, else the descriptor is closed.
fn open_trusted(name: &CStr, offset: u64) -> io::Result<(libc::c_int, libc::stat64)> {
    // SAFETY: `name` is a NUL-terminated path.
    let fd = unsafe { libc::open(name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    match fstat(fd) {
        Some(st) if trusted(&st, offset) => Ok((fd, st)),
        _ => {
            close(fd);
            Err(io::Error::other("not a file copies may come from"))
        }
    }
}

/// Finds the loaded object that holds the template and opens its file.
/// Only at load time may its name be relative (see the module comment).
fn find_image(at_load: bool) -> Image {
    let addr = crate::map::template().as_ptr() as usize;
    let mut found: Option<(Vec<CString>, u64)> = None;
    let mut ctx = (addr, &mut found);
    // SAFETY: the callback only reads the program headers the loader hands
    // it, for the duration of the call.
    unsafe {
        libc::dl_iterate_phdr(Some(phdr_callback), (&raw mut ctx).cast());
    }
    let Some((names, offset)) = found else {
        return Image::Refused;
    };
    if offset % page_size() as u64 != 0 {
        return Image::Refused;
    }
    for name in names {
        if !at_load && name.as_bytes().first() != Some(&b'/') {
            continue;
        }
        let Ok((fd, st)) = open_trusted(&name, offset) else {
            continue;
        };
        // A name that leads to another file (the loader, for a program
        // started as `ld.so ./prog`; a file replaced since it was loaded) is
        // dropped now, while the descriptor is surely ours to close. One
        // page is enough to tell; every mapped copy is still compared in
        // full.
        if !starts_with_template(fd, offset) {
            close(fd);
            continue;
        }
        return Image::Found {
            name,
            offset,
            file: Held::new(fd, &st),
        };
    }
    Image::Refused
}

/// Whether the file holds the template's first page at `offset`.
fn starts_with_template(fd: libc::c_int, offset: u64) -> bool {
    let want = &crate::map::template()[..page_size().min(TEMPLATE_BYTES)];
    // Not past what off_t can name (2 GiB on i386): never truncated.
    let Ok(offset) = libc::off_t::try_from(offset) else {
        return false;
    };
    let mut got = vec![0u8; want.len()];
    // SAFETY: reads at most `got.len()` bytes into `got`.
    let n = unsafe { libc::pread(fd, got.as_mut_ptr().cast(), got.len(), offset) };
    n == got.len() as isize && got == want
}

/// Names the main program's file may have, best first. Started by exec,
/// its file is /proc/self/exe, whatever path it was started by and wherever
/// that path leads now. Started as `ld.so ./prog`, /proc/self/exe is the
/// loader, and glibc's loader reports the path it opened the program by in
/// AT_EXECFN (the loader also rewrites AT_ENTRY and AT_PHDR, so they cannot
/// tell the two cases apart; the first page of the template does).
fn main_program_names() -> Vec<CString> {
    let mut names = vec![c"/proc/self/exe".to_owned()];
    // SAFETY: getauxval has no preconditions; AT_EXECFN, when present, is a
    // NUL-terminated string that lives as long as the process.
    unsafe {
        let p = libc::getauxval(libc::AT_EXECFN) as *const libc::c_char;
        if !p.is_null() {
            names.push(CStr::from_ptr(p).to_owned());
        }
    }
    names
}

unsafe extern "C" fn phdr_callback(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the `ctx` tuple of `find_image`, alive during
    // dl_iterate_phdr; `info` and its headers are valid for this call.
    unsafe {
        let (addr, found) = &mut *(data as *mut (usize, &mut Option<(Vec<CString>, u64)>));
        let info = &*info;
        for i in 0..info.dlpi_phnum as usize {
            let ph = &*info.dlpi_phdr.add(i);
            if ph.p_type != libc::PT_LOAD {
                continue;
            }
            let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
            if *addr >= start && *addr + TEMPLATE_BYTES <= start + ph.p_filesz as usize {
                let names = if info.dlpi_name.is_null() || *info.dlpi_name == 0 {
                    main_program_names()
                } else {
                    vec![CStr::from_ptr(info.dlpi_name).to_owned()]
                };
                // p_offset is 32 bits wide on 32-bit targets.
                #[allow(clippy::useless_conversion)]
                let offset = u64::from(ph.p_offset);
                **found = Some((names, offset + (*addr - start) as u64));
                return 1;
            }
        }
    }
    0
}

/// A memfd holding one copy of the template, sealed so that it can never be
/// written again, before it is ever mapped executable.
fn make_memfd() -> io::Result<(libc::c_int, libc::stat64)> {
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
    let fail = |fd| {
        let e = io::Error::last_os_error();
        close(fd);
        e
    };
    let bytes = crate::map::template();
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: writing from a valid slice into our memfd (not mapped anywhere).
        let n = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        if n <= 0 {
            return Err(fail(fd));
        }
        done += n as usize;
    }
    // SAFETY: fcntl on our own descriptor.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(fail(fd));
    }
    match fstat(fd) {
        Some(st) => Ok((fd, st)),
        None => Err(fail(fd)),
    }
}
