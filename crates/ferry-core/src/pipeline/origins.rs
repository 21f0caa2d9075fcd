//! Where each setting of a pipeline file is written, kept from parsing so that a failure at
//! run time can point at the setting it comes from (`Error::at`).

use std::collections::BTreeMap;

/// Where each setting of a pipeline file is written, by field path (`stages[1].deploy[0]`).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    pub(super) at: BTreeMap<String, crate::Origin>,
}

impl Origins {
    /// Where `field` is written — or, for a value not recorded on its own (an item of a list of
    /// strings), the nearest setting that contains it.
    pub fn of(&self, field: &str) -> Option<crate::Origin> {
        let mut path = field;
        // The whole file (`""`) is no setting.
        while !path.is_empty() {
            if let Some(o) = self.at.get(path) {
                return Some(o.clone());
            }
            path = &path[..path.rfind(['.', '[']).unwrap_or(0)];
        }
        None
    }
}
