//! Layout constants shared with the assembly (generated from
//! `asm/<arch>/layout.h` by build.rs), and the compile-time checks that the
//! Rust structs the assembly reads agree with them.

include!(concat!(env!("OUT_DIR"), "/layout.rs"));

/// Bytes of code per trampoline slot (short name for index arithmetic).
pub const SLOT: usize = SLOT_SIZE;
/// Bytes of one mapped template copy: its groups of slots.
pub const TEMPLATE_BYTES: usize = TEMPLATE_SLOTS / SLOTS_PER_GROUP * GROUP_BYTES;
/// Bytes of the in-image table.
pub const IMAGE_BYTES: usize = IMAGE_SLOTS / SLOTS_PER_GROUP * GROUP_BYTES;

const _: () = assert!(
    TEMPLATE_SLOTS / SLOTS_PER_GROUP * SLOTS_PER_GROUP == TEMPLATE_SLOTS
        && IMAGE_SLOTS / SLOTS_PER_GROUP * SLOTS_PER_GROUP == IMAGE_SLOTS
);
const _: () = assert!(SLOTS_PER_GROUP * SLOT_SIZE <= GROUP_BYTES);
const _: () = assert!(TEMPLATE_BYTES % TEMPLATE_ALIGN == 0);
const _: () = assert!(REC_STRIDE == CLOSURE_SIZE);
const _: () = assert!(RECORDS_BYTES >= TEMPLATE_SLOTS * REC_STRIDE);
const _: () = assert!(RECORDS_BYTES % TEMPLATE_ALIGN == 0 && RECORDS_BYTES >= TEMPLATE_BYTES);
const _: () = assert!(REC_DIST == REGION_COPIES * RECORDS_BYTES);
