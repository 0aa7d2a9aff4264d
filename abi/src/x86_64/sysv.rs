//! x86_64 System V classification (psABI 1.0, §3.2.3 "Parameter Passing").
use crate::{ClassifyError, Plan, Signature};

pub fn classify(_sig: &Signature) -> Result<Plan, ClassifyError> {
    Err(ClassifyError::Unsupported("not yet"))
}
