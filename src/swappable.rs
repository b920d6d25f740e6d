//! A value read on every request and replaced whole now and then (the
//! running config, the signing keys, the webhook list, the WebAuthn relying
//! party): readers take a clone — an `Arc` or an `Option<Arc<_>>` — and
//! never see half of a change.

use std::sync::RwLock;

#[derive(Debug, Default)]
pub struct Swappable<T: Clone> {
    current: RwLock<T>,
}

impl<T: Clone> Swappable<T> {
    pub fn new(value: T) -> Self {
        Self {
            current: RwLock::new(value),
        }
    }

    /// The value now; hold it for the length of one decision.
    pub fn get(&self) -> T {
        match self.current.read() {
            Ok(current) => current.clone(),
            // A panic elsewhere cannot leave the value torn: it is replaced whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, value: T) {
        match self.current.write() {
            Ok(mut current) => *current = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}
