//! sea-orm entities. Only the store module uses them.

pub mod issuer;
pub mod token;
pub mod usage_record;

pub mod prelude {
    pub use super::issuer::Entity as Issuers;
    pub use super::token::Entity as Tokens;
    pub use super::usage_record::Entity as UsageRecords;
}
