use sea_orm::entity::prelude::*;

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_records")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub token_id: String,
    pub created_at_ms: i64,
    pub method: String,
    #[sea_orm(column_type = "Text")]
    pub path: String,
    pub model: Option<String>,
    pub status: i16,
    pub latency_ms: i32,
    pub ttfb_ms: i32,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub stream: bool,
    pub aborted: bool,
    pub estimated: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
