//! Policy sets published to a fleet (migration 0019): the publications,
//! numbered in order, and what each gateway reports it serves. The store
//! keeps them; `policy_tools::publish` decides what may be published and
//! `policy_tools::fleet` serves them.

use super::row::{flag, get, ts};
use super::{Store, StoreError, StoreResult};
use crate::time::{self, Timestamp};
use std::collections::BTreeMap;

/// The files of a policy set, by file name: what a gateway writes to disk
/// and loads like any policy directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PolicyFiles {
    pub policies: BTreeMap<String, String>,
    pub schema: BTreeMap<String, String>,
    pub invariants: BTreeMap<String, String>,
}

/// `live` serves; `shadow` is compared beside the live set until promoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Live,
    Shadow,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Live => "live",
            Stage::Shadow => "shadow",
        }
    }

    fn parse(text: &str) -> StoreResult<Stage> {
        match text {
            "live" => Ok(Stage::Live),
            "shadow" => Ok(Stage::Shadow),
            other => Err(StoreError::Corrupt(format!(
                "policy_publications.stage {other:?}"
            ))),
        }
    }
}

/// What a publication records besides its number and time.
#[derive(Clone, Debug)]
pub struct NewPublication {
    pub version: String,
    pub stage: Stage,
    pub files: PolicyFiles,
    pub invariants_digest: String,
    pub author: String,
    pub host: String,
    pub message: String,
    /// What was proved, in one line.
    pub proof: String,
    /// The invariants removed or changed that `--allow-invariant-change` let through.
    pub invariant_change: Option<String>,
    /// The publication whose content this one republishes.
    pub copied_from: Option<i64>,
}

/// One stored publication.
#[derive(Clone, Debug)]
pub struct Publication {
    pub seq: i64,
    pub published_at: Timestamp,
    pub new: NewPublication,
}

/// What one gateway reports it serves.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GatewayReport {
    pub instance: String,
    pub host: String,
    pub version: String,
    /// The publication it serves; `None` when it serves files.
    pub seq: Option<i64>,
    pub since: Timestamp,
    pub proved: bool,
    pub shadow_version: Option<String>,
    /// Live decisions the shadow set decided otherwise.
    pub shadow_flips: i64,
    /// Why the latest publication does not serve there, if it does not.
    pub problem: Option<String>,
    pub started_at: Timestamp,
    pub last_seen: Timestamp,
}

/// The live publications.
const LIVE: &str = "stage = 'live'";
/// The shadow publications made after the live one (a later live
/// publication ends a shadow one).
const SHADOW: &str = "stage = 'shadow' AND seq > COALESCE(
    (SELECT MAX(seq) FROM policy_publications WHERE stage = 'live'), 0)";

fn publication(row: &sqlx::any::AnyRow) -> StoreResult<Publication> {
    let files: String = get(row, "files")?;
    Ok(Publication {
        seq: get(row, "seq")?,
        published_at: ts(row, "published_at")?,
        new: NewPublication {
            version: get(row, "version")?,
            stage: Stage::parse(&get::<String>(row, "stage")?)?,
            files: serde_json::from_str(&files)
                .map_err(|e| StoreError::Corrupt(format!("policy_publications.files: {e}")))?,
            invariants_digest: get(row, "invariants_digest")?,
            author: get(row, "author")?,
            host: get(row, "host")?,
            message: get(row, "message")?,
            proof: get(row, "proof")?,
            invariant_change: get(row, "invariant_change")?,
            copied_from: get(row, "copied_from")?,
        },
    })
}

impl Store {
    /// Stores `new` as publication `after + 1` (`after`: the latest number
    /// its checks were made against, `None` for the first); refused when
    /// another publication took that number meanwhile, since the checks
    /// (the diff, the invariants kept) were made against the one before.
    pub async fn publish_policies(
        &self,
        after: Option<i64>,
        new: &NewPublication,
    ) -> StoreResult<Publication> {
        let seq = after.unwrap_or(0) + 1;
        let published_at = time::now();
        let files = serde_json::to_string(&new.files)
            .map_err(|e| StoreError::Corrupt(format!("policy files: {e}")))?;
        let inserted = sqlx::query(
            "INSERT INTO policy_publications (seq, version, stage, files, invariants_digest,
                author, host, message, published_at, proof, invariant_change, copied_from)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
             WHERE NOT EXISTS (SELECT 1 FROM policy_publications WHERE seq >= $1)
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(seq)
        .bind(new.version.clone())
        .bind(new.stage.as_str())
        .bind(files)
        .bind(new.invariants_digest.clone())
        .bind(new.author.clone())
        .bind(new.host.clone())
        .bind(new.message.clone())
        .bind(time::format(published_at))
        .bind(new.proof.clone())
        .bind(new.invariant_change.clone())
        .bind(new.copied_from)
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() != 1 {
            return Err(StoreError::Refused(format!(
                "publication {seq} was made by someone else meanwhile; run the command again to check against it"
            )));
        }
        Ok(Publication {
            seq,
            published_at,
            new: new.clone(),
        })
    }

    /// The number of the latest publication, live or shadow.
    pub async fn latest_publication_seq(&self) -> StoreResult<Option<i64>> {
        self.latest_seq("TRUE").await
    }

    /// The number of the live publication.
    pub async fn live_publication_seq(&self) -> StoreResult<Option<i64>> {
        self.latest_seq(LIVE).await
    }

    /// The number of the shadow publication (see [`Store::shadow_publication`]).
    pub async fn shadow_publication_seq(&self) -> StoreResult<Option<i64>> {
        self.latest_seq(SHADOW).await
    }

    /// The publication that serves: the latest live one.
    pub async fn live_publication(&self) -> StoreResult<Option<Publication>> {
        self.latest_publication(LIVE).await
    }

    /// The shadow candidate: a shadow publication made after the live one.
    pub async fn shadow_publication(&self) -> StoreResult<Option<Publication>> {
        self.latest_publication(SHADOW).await
    }

    /// The number of the latest publication `condition` selects.
    async fn latest_seq(&self, condition: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query(&format!(
            "SELECT MAX(seq) AS seq FROM policy_publications WHERE {condition}"
        ))
        .fetch_one(self.pool())
        .await?;
        get(&row, "seq")
    }

    /// The latest publication `condition` selects.
    async fn latest_publication(&self, condition: &str) -> StoreResult<Option<Publication>> {
        sqlx::query(&format!(
            "SELECT * FROM policy_publications WHERE {condition} ORDER BY seq DESC LIMIT 1"
        ))
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(publication)
        .transpose()
    }

    /// Every publication, the latest first.
    pub async fn publications(&self) -> StoreResult<Vec<Publication>> {
        sqlx::query("SELECT * FROM policy_publications ORDER BY seq DESC")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(publication)
            .collect()
    }

    /// Records what gateway `report.instance` serves (its heartbeat).
    pub async fn report_gateway(&self, report: &GatewayReport) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO policy_gateways (instance, host, version, seq, since, proved,
                shadow_version, shadow_flips, problem, started_at, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (instance) DO UPDATE SET host = excluded.host,
                version = excluded.version, seq = excluded.seq, since = excluded.since,
                proved = excluded.proved, shadow_version = excluded.shadow_version,
                shadow_flips = excluded.shadow_flips,
                problem = excluded.problem, started_at = excluded.started_at,
                last_seen = excluded.last_seen",
        )
        .bind(report.instance.clone())
        .bind(report.host.clone())
        .bind(report.version.clone())
        .bind(report.seq)
        .bind(time::format(report.since))
        .bind(report.proved)
        .bind(report.shadow_version.clone())
        .bind(report.shadow_flips)
        .bind(report.problem.clone())
        .bind(time::format(report.started_at))
        .bind(time::format(report.last_seen))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// What every gateway last reported, by instance.
    pub async fn fleet(&self) -> StoreResult<Vec<GatewayReport>> {
        let rows = sqlx::query("SELECT * FROM policy_gateways ORDER BY instance")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(GatewayReport {
                    instance: get(r, "instance")?,
                    host: get(r, "host")?,
                    version: get(r, "version")?,
                    seq: get(r, "seq")?,
                    since: ts(r, "since")?,
                    proved: flag(r, "proved")?,
                    shadow_version: get(r, "shadow_version")?,
                    shadow_flips: get(r, "shadow_flips")?,
                    problem: get(r, "problem")?,
                    started_at: ts(r, "started_at")?,
                    last_seen: ts(r, "last_seen")?,
                })
            })
            .collect()
    }
}
