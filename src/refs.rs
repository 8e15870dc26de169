//! Typed references to the model's entities (`Customer::"cust-1"`) and its
//! entity types, with their Cedar names: the vocabulary the policies, the
//! entity loader, the catalog and the list filters share.

use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

/// The Cedar namespace of the schema; test files and the CLI leave it out.
pub const NAMESPACE: &str = "PartnerCenter";

/// The entity types of the model, without the namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityType {
    Partner,
    Operator,
    Customer,
    Authorization,
    Order,
    Resource,
    Session,
    Export,
}

impl EntityType {
    pub const ALL: [EntityType; 8] = [
        EntityType::Partner,
        EntityType::Operator,
        EntityType::Customer,
        EntityType::Authorization,
        EntityType::Order,
        EntityType::Resource,
        EntityType::Session,
        EntityType::Export,
    ];

    /// The name without the namespace, e.g. `Customer`.
    pub fn name(self) -> &'static str {
        match self {
            EntityType::Partner => "Partner",
            EntityType::Operator => "Operator",
            EntityType::Customer => "Customer",
            EntityType::Authorization => "Authorization",
            EntityType::Order => "Order",
            EntityType::Resource => "Resource",
            EntityType::Session => "Session",
            EntityType::Export => "Export",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The Cedar type name, with the namespace.
    pub fn cedar(self) -> &'static EntityTypeName {
        &ENTITY_TYPES[self.index()]
    }

    /// The type of a Cedar type name of the model's namespace.
    pub fn from_cedar(name: &EntityTypeName) -> Option<EntityType> {
        EntityType::ALL.into_iter().find(|t| t.cedar() == name)
    }

    /// The type named `name` (without the namespace).
    pub fn from_name(name: &str) -> Option<EntityType> {
        EntityType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// A type written `Customer` or `PartnerCenter::Customer`.
    pub fn parse(text: &str) -> Option<EntityType> {
        let text = text.trim();
        let name = text
            .strip_prefix(NAMESPACE)
            .and_then(|t| t.strip_prefix("::"))
            .unwrap_or(text);
        EntityType::from_name(name)
    }

    /// A reference to the entity `id` of this type.
    pub fn entity(self, id: impl Into<Arc<str>>) -> EntityRef {
        let id = id.into();
        match self {
            EntityType::Partner => EntityRef::Partner(id),
            EntityType::Operator => EntityRef::Operator(id),
            EntityType::Customer => EntityRef::Customer(id),
            EntityType::Authorization => EntityRef::Authorization(id),
            EntityType::Order => EntityRef::Order(id),
            EntityType::Resource => EntityRef::Resource(id),
            EntityType::Session => EntityRef::Session(id),
            EntityType::Export => EntityRef::Export(id),
        }
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

static ENTITY_TYPES: LazyLock<Vec<EntityTypeName>> = LazyLock::new(|| {
    EntityType::ALL
        .iter()
        .map(|t| {
            EntityTypeName::from_str(&format!("{NAMESPACE}::{}", t.name()))
                .expect("the model's type names are valid Cedar names")
        })
        .collect()
});

/// A typed reference to one entity of the model, without the namespace.
/// The id is shared, not copied, by the references' copies: entity slices
/// and decision keys copy references on every request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityRef {
    Partner(Arc<str>),
    Operator(Arc<str>),
    Customer(Arc<str>),
    Authorization(Arc<str>),
    Order(Arc<str>),
    Resource(Arc<str>),
    Session(Arc<str>),
    Export(Arc<str>),
}

/// A reference that is not `Type::"id"` with one of the model's types.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid entity reference {text:?}: {reason}")]
pub struct EntityRefError {
    pub text: String,
    pub reason: String,
}

impl EntityRef {
    pub fn kind(&self) -> EntityType {
        match self {
            EntityRef::Partner(_) => EntityType::Partner,
            EntityRef::Operator(_) => EntityType::Operator,
            EntityRef::Customer(_) => EntityType::Customer,
            EntityRef::Authorization(_) => EntityType::Authorization,
            EntityRef::Order(_) => EntityType::Order,
            EntityRef::Resource(_) => EntityType::Resource,
            EntityRef::Session(_) => EntityType::Session,
            EntityRef::Export(_) => EntityType::Export,
        }
    }

    /// The type name without the namespace, e.g. `Customer`.
    pub fn type_name(&self) -> &'static str {
        self.kind().name()
    }

    /// The id when Cedar's escaping leaves it as it is (printable ASCII but
    /// `"` and `\\`: every id the gateway makes), so that `Type::"id"` is
    /// its text.
    pub fn plain_id(&self) -> Option<&str> {
        let id = self.id();
        id.bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
            .then_some(id)
    }

    pub fn id(&self) -> &str {
        match self {
            EntityRef::Partner(id)
            | EntityRef::Operator(id)
            | EntityRef::Customer(id)
            | EntityRef::Authorization(id)
            | EntityRef::Order(id)
            | EntityRef::Resource(id)
            | EntityRef::Session(id)
            | EntityRef::Export(id) => id,
        }
    }

    /// The Cedar entity id, with the namespace: `PartnerCenter::Customer::"c1"`.
    pub fn uid(&self) -> EntityUid {
        EntityUid::from_type_name_and_id(self.kind().cedar().clone(), EntityId::new(self.id()))
    }

    /// The reverse of [`EntityRef::uid`]; `None` for other types (actions).
    pub fn from_uid(uid: &EntityUid) -> Option<EntityRef> {
        EntityType::from_cedar(uid.type_name()).map(|t| t.entity(uid.id().unescaped()))
    }

    /// Parses `Type::"id"` (Cedar's syntax, escapes included), with or
    /// without the `PartnerCenter::` namespace.
    pub fn parse(text: &str) -> Result<EntityRef, EntityRefError> {
        let err = |reason: &str| EntityRefError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let uid = EntityUid::from_str(text.trim())
            .map_err(|_| err("expected Type::\"id\", e.g. Customer::\"cust-1\""))?;
        let ty = uid.type_name();
        let namespace = ty.namespace();
        if !(namespace.is_empty() || namespace == NAMESPACE) {
            return Err(err(&format!("unknown namespace {namespace:?}")));
        }
        let kind = EntityType::from_name(ty.basename()).ok_or_else(|| {
            err(&format!(
                "unknown entity type {:?} (one of {})",
                ty.basename(),
                EntityType::ALL.map(EntityType::name).join(", ")
            ))
        })?;
        Ok(kind.entity(uid.id().unescaped()))
    }
}

impl fmt::Display for EntityRef {
    /// `Type::"id"` with Cedar's escaping, the form [`EntityRef::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written directly, without building Cedar's name and uid on the
        // request path.
        if let Some(id) = self.plain_id() {
            return write!(f, "{}::\"{id}\"", self.type_name());
        }
        let ty = EntityTypeName::from_str(self.type_name()).map_err(|_| fmt::Error)?;
        let uid = EntityUid::from_type_name_and_id(ty, EntityId::new(self.id()));
        write!(f, "{uid}")
    }
}

impl FromStr for EntityRef {
    type Err = EntityRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_refs_parse_with_or_without_namespace() {
        assert_eq!(
            EntityRef::parse(r#"Operator::"op-x""#).unwrap(),
            EntityRef::Operator("op-x".into())
        );
        assert_eq!(
            EntityRef::parse(r#"PartnerCenter::Customer::"c\"1""#).unwrap(),
            EntityRef::Customer("c\"1".into())
        );
        assert!(EntityRef::parse(r#"Other::Customer::"c1""#).is_err());
        assert!(EntityRef::parse(r#"Action::"SetBudget""#).is_err());
        assert!(EntityRef::parse("cust-1").is_err());
    }

    /// The text is Cedar's own `Type::"id"`, escapes and all, whichever way
    /// it was written.
    #[test]
    fn entity_refs_print_as_cedar_does() {
        for id in [
            "cust-acme",
            "a b:c@d/e.f_g~",
            "s \"1\"",
            "back\\slash",
            "tab\t",
            "é",
            "",
        ] {
            let r = EntityRef::Customer(id.into());
            let ty = EntityTypeName::from_str("Customer").unwrap();
            let cedar = EntityUid::from_type_name_and_id(ty, EntityId::new(id));
            assert_eq!(r.to_string(), cedar.to_string(), "{id:?}");
        }
    }

    #[test]
    fn entity_refs_round_trip_through_text_and_uid() {
        let r = EntityRef::Session("s \"1\"".into());
        assert_eq!(EntityRef::parse(&r.to_string()).unwrap(), r);
        assert_eq!(EntityRef::from_uid(&r.uid()).unwrap(), r);
        assert_eq!(
            EntityRef::Customer("c1".into()).uid().to_string(),
            r#"PartnerCenter::Customer::"c1""#
        );
    }
}
