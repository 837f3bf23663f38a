//! [`Variables`] over Spin's `fermyon:spin/variables`.

use spin_sdk::variables::{self, Error};

use crate::config::{VariableError, Variables};

pub struct SpinVariables;

impl Variables for SpinVariables {
    fn get(&self, name: &str) -> Result<Option<String>, VariableError> {
        match variables::get(name) {
            Ok(value) => Ok(Some(value)),
            Err(Error::Undefined(_)) => Ok(None),
            Err(Error::InvalidName(reason) | Error::Provider(reason) | Error::Other(reason)) => {
                Err(VariableError { reason })
            }
        }
    }
}
