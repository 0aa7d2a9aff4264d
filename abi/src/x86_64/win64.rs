//! Microsoft x64 classification as libffi implements it (`src/x86/ffiw64.c`).
use crate::{ClassifyError, Plan, Signature};

pub fn classify(_sig: &Signature) -> Result<Plan, ClassifyError> {
    Err(ClassifyError::Unsupported("not yet"))
}
