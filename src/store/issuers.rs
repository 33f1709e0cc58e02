use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};

use super::entities::prelude::{Issuers, Tokens};
use super::entities::{issuer, token};
use super::{NewToken, Store, StoreError, TokenRecord};
use crate::issuer::{Issuer, IssuerCaps};

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("lists serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|_| StoreError::Corrupt(format!("issuers.{column} is not valid JSON")))
}

impl TryFrom<issuer::Model> for Issuer {
    type Error = StoreError;

    fn try_from(m: issuer::Model) -> Result<Self, StoreError> {
        Ok(Issuer {
            caps: IssuerCaps {
                providers: from_json("providers", &m.providers)?,
                upstreams: from_json("upstreams", &m.upstreams)?,
                required: from_json("required", &m.required)?,
                max_lifetime_secs: m.max_lifetime_secs,
                max_calls: m.max_calls,
            },
            name: m.name,
            public_key: m.public_key,
            created_at: m.created_at,
            revoked_at: m.revoked_at,
        })
    }
}

/// The fingerprint column of a placeholder row: a signed token revoked before its first use.
pub fn unused_fingerprint(id: &str) -> String {
    format!("revoked-before-use:{id}")
}

impl Store {
    pub async fn insert_issuer(
        &self,
        name: &str,
        public_key_hex: &str,
        caps: &IssuerCaps,
    ) -> Result<Issuer, StoreError> {
        if Issuers::find_by_id(name.to_string())
            .one(&self.writer)
            .await?
            .is_some()
        {
            return Err(StoreError::Exists(name.to_string()));
        }
        issuer::ActiveModel {
            name: Set(name.to_string()),
            public_key: Set(public_key_hex.to_string()),
            created_at: Set(Utc::now()),
            revoked_at: Set(None),
            providers: Set(to_json(&caps.providers)),
            upstreams: Set(to_json(&caps.upstreams)),
            required: Set(to_json(&caps.required)),
            max_lifetime_secs: Set(caps.max_lifetime_secs),
            max_calls: Set(caps.max_calls),
        }
        .insert(&self.writer)
        .await?
        .try_into()
    }

    pub async fn list_issuers(&self) -> Result<Vec<Issuer>, StoreError> {
        Issuers::find()
            .order_by_asc(issuer::Column::Name)
            .all(&self.db)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    pub async fn get_issuer(&self, name: &str) -> Result<Option<Issuer>, StoreError> {
        Issuers::find_by_id(name.to_string())
            .one(&self.db)
            .await?
            .map(TryInto::try_into)
            .transpose()
    }

    /// Revokes an issuer and, in the same transaction, every token of it already in use.
    pub async fn revoke_issuer(&self, name: &str) -> Result<Issuer, StoreError> {
        let now = Utc::now();
        let txn = self.writer.begin().await?;
        Issuers::update_many()
            .col_expr(issuer::Column::RevokedAt, Expr::value(now))
            .filter(issuer::Column::Name.eq(name))
            .filter(issuer::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        Tokens::update_many()
            .col_expr(token::Column::RevokedAt, Expr::value(now))
            .filter(token::Column::Issuer.eq(name))
            .filter(token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.get_issuer(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.to_string()))
    }

    /// Registers a signed token at its first use; a row that already exists (another
    /// request or relay got there first) is kept. Returns the row with that id.
    pub async fn register_signed_token(
        &self,
        new: &NewToken,
        issuer: &str,
    ) -> Result<TokenRecord, StoreError> {
        let active = super::tokens::new_row(new, Some(issuer));
        Tokens::insert(active)
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .exec_without_returning(&self.writer)
            .await?;
        self.get_token(&new.id).await
    }

    /// Revokes a signed token that has never been used, by id: a placeholder row refuses it
    /// at its first use.
    pub async fn revoke_unused_signed(
        &self,
        id: &str,
        issuer: &str,
        at: DateTime<Utc>,
    ) -> Result<TokenRecord, StoreError> {
        let active = super::tokens::placeholder_row(id, unused_fingerprint(id), issuer, at);
        Tokens::insert(active)
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .exec_without_returning(&self.writer)
            .await?;
        self.revoke(id).await
    }
}
