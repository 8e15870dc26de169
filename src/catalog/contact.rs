//! The contact fields of a customer (`customer`, `email`, `telephone` on
//! the wire) and how each is masked: the store masks them unless asked for
//! them in clear, and the gateway masks again, customer by customer, every
//! field a `RevealContact` decision does not allow.

/// The action asked before a contact field is shown in clear (R2), per
/// customer.
pub const REVEAL_CONTACT: &str = "RevealContact";

/// One contact field.
pub struct ContactField {
    /// Its name in `RevealContact`'s `fields`.
    pub field: &'static str,
    /// Its name on the wire.
    pub wire: &'static str,
    pub mask: fn(&str) -> String,
}

pub const CONTACT_FIELDS: [ContactField; 3] = [
    ContactField {
        field: "name",
        wire: "customer",
        mask: mask_name,
    },
    ContactField {
        field: "email",
        wire: "email",
        mask: mask_email,
    },
    ContactField {
        field: "phone",
        wire: "telephone",
        mask: mask_phone,
    },
];

/// `Nova Retail Ltd` → `N***`.
pub fn mask_name(name: &str) -> String {
    match name.trim().chars().next() {
        Some(first) => format!("{first}***"),
        None => String::new(),
    }
}

/// `it@nova-retail.example` → `i***@nova-retail.example`.
pub fn mask_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{}@{domain}", mask_name(local)),
        None => mask_name(email),
    }
}

/// `+1-555-0101` → `+1-555-****`: the last four digits hidden (all digits
/// when there are fewer).
pub fn mask_phone(phone: &str) -> String {
    let mut hidden = 0;
    let mut out: Vec<char> = phone.chars().collect();
    for c in out.iter_mut().rev() {
        if hidden == 4 {
            break;
        }
        if c.is_ascii_digit() {
            *c = '*';
            hidden += 1;
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_a_recognisable_minimum() {
        assert_eq!(mask_name("Nova Retail Ltd"), "N***");
        assert_eq!(mask_name(""), "");
        assert_eq!(
            mask_email("it@nova-retail.example"),
            "i***@nova-retail.example"
        );
        assert_eq!(mask_email("no-at-sign"), "n***");
        assert_eq!(mask_phone("+1-555-0101"), "+1-555-****");
        assert_eq!(mask_phone("12"), "**");
    }
}
