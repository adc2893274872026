//! Starling's use cases.
//!
//! [`Core`] is what the HTTP edge (and the admin CLI) calls: it takes parsed
//! inputs, applies the rules, and talks to the seams. It knows nothing of
//! HTTP or JSON; its errors say what went wrong in domain terms and the edge
//! maps them to status codes in one place.

pub mod accounts;
pub mod error;
pub mod oauth;
pub mod passwords;

use std::sync::Arc;

use starling_domain::{Clock, IdGenerator};
use starling_store::Store;

pub use error::{CoreError, CoreResult, OAuthError};
pub use oauth::Principal;
pub use passwords::Passwords;

/// Settings the use cases need (a slice of the configuration).
#[derive(Clone, Debug)]
pub struct CoreSettings {
    /// Whether `POST /api/v1/accounts` accepts new sign-ups.
    pub registrations_open: bool,
}

impl Default for CoreSettings {
    fn default() -> Self {
        Self {
            registrations_open: true,
        }
    }
}

/// The use cases, bound to their seams. Cheap to clone.
#[derive(Clone)]
pub struct Core {
    store: Arc<dyn Store>,
    ids: Arc<IdGenerator>,
    clock: Arc<dyn Clock>,
    passwords: Passwords,
    settings: CoreSettings,
}

impl Core {
    pub fn new(
        store: Arc<dyn Store>,
        ids: Arc<IdGenerator>,
        clock: Arc<dyn Clock>,
        passwords: Passwords,
        settings: CoreSettings,
    ) -> Self {
        Self {
            store,
            ids,
            clock,
            passwords,
            settings,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }
}
