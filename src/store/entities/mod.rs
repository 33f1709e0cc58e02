//! sea-orm entities. Only the store module uses them.

pub mod token;

pub mod prelude {
    pub use super::token::Entity as Tokens;
}
