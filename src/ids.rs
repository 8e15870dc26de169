//! Typed identifiers, so that a customer id can never be passed where an
//! operator id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    )+};
}

id_type!(
    /// A partner organisation (distributor, reseller or solution provider).
    PartnerId,
    /// A person or API credential of a partner.
    OperatorId,
    /// A cloud customer account.
    CustomerId,
    /// A customer's consent for its partner to act on its behalf.
    AuthorizationId,
    /// A yearly/monthly order.
    OrderId,
    /// A cloud resource of a customer.
    ResourceId,
    /// An assume-role session.
    SessionId,
    /// An order export task.
    ExportId,
);
