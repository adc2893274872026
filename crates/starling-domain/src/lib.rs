//! Starling's domain: the types every other crate speaks in.
//!
//! Nothing here does I/O. Inputs from the outside world are parsed once into
//! these types ("parse, don't validate") and the rest of the code relies on
//! their invariants: a [`Username`] is always well formed, an [`Id`] always
//! carries its logical shard, a [`ScopeSet`] only holds known scopes.

pub mod account;
pub mod clock;
pub mod event;
pub mod id;
pub mod media;
pub mod oauth;
pub mod scope;
pub mod secret;
pub mod social;
pub mod status;
pub mod text;
pub mod validation;

pub use account::{Account, Email, Password, ProfileUpdate, Username};
pub use clock::{Clock, ManualClock, SystemClock};
pub use event::{Event, EventKind};
pub use id::{Id, IdGenerator, ShardId, SHARD_COUNT};
pub use media::{Focus, MediaAttachment, MediaFile, MediaState, MediaType};
pub use scope::{Scope, ScopeSet};
pub use secret::{Secret, SecretHash};
pub use social::{FollowOptions, Notification, NotificationType, Page, Relationship};
pub use status::{Status, Visibility};
pub use validation::{FieldError, ValidationErrors};
