//! The policy file format, exactly as written. Every field a validation error can point at is
//! `Spanned`, so errors name the line.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    pub default_tier: Option<Spanned<String>>,
    pub device_floor: Option<Spanned<DeviceFloorFile>>,
    #[serde(default)]
    pub lanes: BTreeMap<String, Spanned<LaneFile>>,
    #[serde(default)]
    pub pools: BTreeMap<String, Spanned<PoolFile>>,
    pub break_glass: Option<Spanned<BreakGlassFile>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RuleFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceFloorFile {
    #[serde(default)]
    pub size: Vec<Spanned<SizeFloorFile>>,
    pub no_rollback: Spanned<String>,
    pub security: Spanned<String>,
    pub kind: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SizeFloorFile {
    pub min: u32,
    pub tier: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LaneFile {
    #[serde(default)]
    pub approvals: u8,
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
    #[serde(default)]
    pub pools: Vec<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub escalation: Vec<Spanned<String>>,
    pub on_no_response: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PoolFile {
    pub members: Vec<String>,
    pub rotation: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BreakGlassFile {
    pub max_cohort: u32,
    pub max_lifetime: Spanned<String>,
    #[serde(default = "one")]
    pub approvals: u8,
    pub pools: Vec<Spanned<String>>,
    pub post_review_pool: Spanned<String>,
}

fn one() -> u8 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleFile {
    pub name: String,
    pub tier: Spanned<String>,
    #[serde(default)]
    pub why: Option<String>,
    #[serde(default)]
    pub when: WhenFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WhenFile {
    pub kind: Option<Vec<Spanned<String>>>,
    pub environment: Option<Vec<String>>,
    pub hardware: Option<Vec<String>>,
    pub cohort_size_at_least: Option<u32>,
    pub share_above: Option<Spanned<f64>>,
    pub share_at_least: Option<Spanned<f64>>,
    pub rollback: Option<bool>,
    pub security: Option<bool>,
    pub hours: Option<Spanned<String>>,
    pub days: Option<Vec<Spanned<String>>>,
}
