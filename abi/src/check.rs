//! Type checks every architecture's classifier runs first: the types are
//! well formed ([`crate::Type::validate`]) and every scalar in them has the
//! size and alignment the architecture gives its kind.

use crate::{ClassifyError, Kind, Type, TypeError};

/// An architecture's scalar layouts (e.g. `crate::x86_64::standard_layout`).
pub(crate) type Layouts = fn(&Kind) -> Option<(u64, u64)>;

/// Checks that every scalar inside `t` (and every complex type) has the size
/// and alignment `layout` gives it.
///
/// [`Type::validate`] takes a struct's stated size and alignment as they are
/// (libffi does: clients state packed, union and bitfield layouts), but a
/// scalar's layout is fixed by its kind: a `uint8` claiming 3 bytes would
/// make the register arithmetic meaningless (libffi would silently
/// misbehave; its predefined types and every ctypes field type carry the
/// standard layouts), so it is reported as [`TypeError::LayoutMismatch`]
/// (stated vs. standard layout). `void` (as an element, any stated layout)
/// is not checked. Must run after `validate` (which bounds the nesting
/// depth).
pub(crate) fn check_standard(t: &Type, layout: Layouts) -> Result<(), ClassifyError> {
    let expect = match &t.kind {
        Kind::Void => return Ok(()),
        Kind::Struct(elems) => {
            return elems.iter().try_for_each(|e| check_standard(e, layout));
        }
        Kind::Complex(elem) => {
            check_standard(elem, layout)?;
            (elem.size * 2, elem.align)
        }
        k => layout(k).expect("scalar kind"),
    };
    if (t.size, t.align) != expect {
        return Err(ClassifyError::BadType(TypeError::LayoutMismatch {
            stated_size: t.size,
            stated_align: t.align,
            size: expect.0,
            align: expect.1,
        }));
    }
    Ok(())
}

/// Validates the return type and every argument type, then checks their
/// scalar layouts ([`check_standard`]). A `void` argument is refused with
/// [`ClassifyError::Unsupported`]`("void argument")`.
pub(crate) fn check_signature(
    args: &[Type],
    ret: &Type,
    layout: Layouts,
) -> Result<(), ClassifyError> {
    ret.validate()?;
    check_standard(ret, layout)?;
    for a in args {
        a.validate()?;
        if a.kind == Kind::Void {
            return Err(ClassifyError::Unsupported("void argument"));
        }
        check_standard(a, layout)?;
    }
    Ok(())
}
