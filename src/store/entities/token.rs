use sea_orm::entity::prelude::*;

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: Option<String>,
    pub provider: String,
    pub upstream: Option<String>,
    pub auth: Option<String>,
    #[sea_orm(unique)]
    pub fingerprint: String,
    pub kid: String,
    pub key_hint: String,
    pub max_calls: Option<i64>,
    pub used_calls: i64,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub allowed_models: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub allowed_origins: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub allowed_ips: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub allowed_endpoints: Option<String>,
    pub rpm: Option<i32>,
    pub concurrency: Option<i32>,
    pub max_output_tokens: Option<i32>,
    pub max_session_secs: Option<i32>,
    pub max_total_tokens: Option<i64>,
    pub used_tokens: i64,
    pub issuer: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
