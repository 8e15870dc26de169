//! The migrations, embedded in the binary: every file of `migrations/sqlite/`
//! and `migrations/postgres/`, as sqlx's `migrate!` would embed them (same
//! versions and checksums, so a database migrated by either is current for
//! the other), without sqlx's proc-macro crate, which builds the database
//! drivers a second time. A new migration file is added to its list here; a
//! test checks that the lists are the directories.

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// One file: its name (`NNNN_description.sql`) and its text.
pub type File = (&'static str, &'static str);

macro_rules! migration {
    ($dir:literal, $name:literal) => {
        (
            $name,
            include_str!(concat!("../../migrations/", $dir, "/", $name)),
        )
    };
}

pub const SQLITE: &[File] = &[
    migration!("sqlite", "0001_init.sql"),
    migration!("sqlite", "0002_partner_records.sql"),
    migration!("sqlite", "0003_export_error.sql"),
    migration!("sqlite", "0010_partner_sessions.sql"),
    migration!("sqlite", "0011_session_authorization_optional.sql"),
    migration!("sqlite", "0012_credentials_stay_dead.sql"),
    migration!("sqlite", "0015_deleted_principals_stay_dead.sql"),
    migration!("sqlite", "0016_assumed_by_the_proofs.sql"),
    migration!("sqlite", "0017_resource_product.sql"),
    migration!("sqlite", "0018_rate_limits_and_retries.sql"),
    migration!("sqlite", "0019_policy_publications.sql"),
];

pub const POSTGRES: &[File] = &[
    migration!("postgres", "0001_init.sql"),
    migration!("postgres", "0002_partner_records.sql"),
    migration!("postgres", "0003_export_error.sql"),
    migration!("postgres", "0010_partner_sessions.sql"),
    migration!("postgres", "0011_session_authorization_optional.sql"),
    migration!("postgres", "0012_credentials_stay_dead.sql"),
    migration!("postgres", "0013_owners_changed.sql"),
    migration!("postgres", "0014_seen_assertions.sql"),
    migration!("postgres", "0015_deleted_principals_stay_dead.sql"),
    migration!("postgres", "0016_assumed_by_the_proofs.sql"),
    migration!("postgres", "0017_resource_product.sql"),
    migration!("postgres", "0018_rate_limits_and_retries.sql"),
    migration!("postgres", "0019_policy_publications.sql"),
];

/// The migrator of one dialect's files. A database migrated by a newer
/// release (a migration this binary does not know) is accepted: while a
/// fleet upgrades, gateways of the release before restart against the
/// schema the first upgraded one expanded, and every migration from 0019
/// on only adds what they ignore (README, "Upgrading a fleet").
pub async fn migrator(files: &'static [File]) -> Result<Migrator, sqlx::migrate::MigrateError> {
    let mut migrator = Migrator::new(Embedded(files)).await?;
    migrator.set_ignore_missing(true);
    Ok(migrator)
}

#[derive(Debug)]
struct Embedded(&'static [File]);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move {
            self.0
                .iter()
                .map(|(name, sql)| {
                    let stem = name
                        .strip_suffix(".sql")
                        .ok_or("a migration file ends in .sql")?;
                    let (version, description) = stem
                        .split_once('_')
                        .ok_or("a migration file is NNNN_description.sql")?;
                    Ok(Migration::new(
                        version.parse()?,
                        Cow::Owned(description.replace('_', " ")),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    ))
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first migration of the rolling-upgrade rule.
    const EXPAND_ONLY_FROM: &str = "0019";

    /// The embedded lists are the directories, file for file.
    #[test]
    fn every_migration_file_is_embedded() {
        for (dir, files) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let mut on_disk: Vec<(String, String)> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read_to_string(e.path()).unwrap(),
                    )
                })
                .collect();
            on_disk.sort();
            let embedded: Vec<(String, String)> = files
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect();
            assert_eq!(
                embedded, on_disk,
                "migrations/{dir}: add the new file to src/store/migrations.rs"
            );
        }
    }

    /// From [`EXPAND_ONLY_FROM`] on, a migration adds tables, columns
    /// (nullable or with a default), indexes and triggers: it drops,
    /// renames, retypes and tightens nothing a gateway of the release
    /// before may still read or write.
    #[test]
    fn migrations_only_expand() {
        let contracting = [
            "DROP TABLE",
            "DROP COLUMN",
            "RENAME",
            " TYPE ",
            "SET NOT NULL",
            "DELETE FROM",
            "UPDATE ",
        ];
        for (name, sql) in SQLITE.iter().chain(POSTGRES) {
            if *name < EXPAND_ONLY_FROM {
                continue;
            }
            let code: String = sql
                .lines()
                .map(|l| l.split("--").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
                .to_uppercase();
            for word in contracting {
                assert!(!code.contains(word), "{name} contracts the schema ({word})");
            }
            for line in code.lines().filter(|l| l.contains("ADD COLUMN")) {
                assert!(
                    !line.contains("NOT NULL") || line.contains("DEFAULT"),
                    "{name}: a NOT NULL column without a default breaks the release before's inserts: {line}"
                );
            }
        }
    }

    /// A gateway of the release before (its list one migration shorter)
    /// starts on a database the newer release migrated.
    #[tokio::test]
    async fn the_release_before_starts_on_a_database_the_newer_one_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("db.sqlite").display()
        );
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        migrator(SQLITE).await.unwrap().run(&pool).await.unwrap();
        let before = &SQLITE[..SQLITE.len() - 1];
        migrator(before).await.unwrap().run(&pool).await.unwrap();
    }
}
