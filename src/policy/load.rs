//! Reading a policy directory and a schema directory into one validated
//! policy set, keeping for every policy where it was written, so that every
//! problem and every determining policy can be shown as `file:line`.

use super::describe;
use cedar_policy::{
    Effect, Policy, PolicyId, PolicySet, Schema, SchemaFragment, ValidationMode, Validator,
};
use miette::Diagnostic;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One policy as written: its id (from `@id`), where, and what it says of itself.
#[derive(Clone, Debug)]
pub struct PolicyInfo {
    pub id: String,
    pub file: PathBuf,
    /// 1-based line where the policy (its first annotation) starts.
    pub line: usize,
    pub effect: Effect,
    /// Every annotation, `id` included (`error_code`, `error_msg`, ...).
    pub annotations: BTreeMap<String, String>,
    /// The `//` comment right above the policy: the one line that says why.
    pub comment: Option<String>,
}

impl PolicyInfo {
    /// `policies/20-budget-freeze.cedar:42`
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// One problem found while loading, where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadIssue {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for LoadIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Everything wrong with a policy or schema directory, all at once.
#[derive(Clone, Debug, thiserror::Error)]
pub struct PolicyLoadError {
    pub issues: Vec<LoadIssue>,
}

impl fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "{n} problem{} in the policies or schema:",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

pub(super) struct Loaded {
    pub policies: PolicySet,
    pub schema: Schema,
    /// The schema's fragments in Cedar's JSON schema format.
    pub schema_json: Vec<serde_json::Value>,
    pub infos: Vec<PolicyInfo>,
    pub version: String,
    /// The same hash over the schema files alone.
    pub schema_digest: String,
}

/// A file read into memory.
struct Source {
    path: PathBuf,
    text: String,
}

pub(super) fn load(policies_dir: &Path, schema_dir: &Path) -> Result<Loaded, PolicyLoadError> {
    let mut issues = Vec::new();
    let schema_files = read_dir(schema_dir, "cedarschema", &mut issues);
    let policy_files = read_dir(policies_dir, "cedar", &mut issues);

    let schema = load_schema(schema_dir, &schema_files, &mut issues);
    let (policies, infos) = load_policies(&policy_files, &mut issues);

    if let (Some((schema, _)), true) = (&schema, issues.is_empty()) {
        validate(schema, &policies, &infos, &policy_files, &mut issues);
    }
    match schema {
        Some((schema, schema_json)) if issues.is_empty() => Ok(Loaded {
            policies,
            schema,
            schema_json,
            infos,
            version: version(&schema_files, &policy_files),
            schema_digest: version(&schema_files, &[]),
        }),
        _ => Err(PolicyLoadError { issues }),
    }
}

/// A directory of Cedar policies read like the policy set but not part of
/// it (the invariants `policy verify` proves): parsed, `@id` required, and
/// strictly validated against `schema`, every problem with file and line.
pub(crate) struct LoadedDir {
    pub policies: PolicySet,
    pub infos: Vec<PolicyInfo>,
    /// Hash of the files' names and contents, as [`Loaded::version`].
    pub digest: String,
}

pub(crate) fn load_dir(dir: &Path, schema: &Schema) -> Result<LoadedDir, PolicyLoadError> {
    let mut issues = Vec::new();
    let files = read_dir(dir, "cedar", &mut issues);
    let (policies, infos) = load_policies(&files, &mut issues);
    if issues.is_empty() {
        validate(schema, &policies, &infos, &files, &mut issues);
    }
    if issues.is_empty() {
        Ok(LoadedDir {
            policies,
            infos,
            digest: version(&[], &files),
        })
    } else {
        Err(PolicyLoadError { issues })
    }
}

/// The version of the policy and schema files on disk now, and the digest of
/// the invariant files, computed as [`load`] and [`load_dir`] compute them:
/// whether a set just loaded is the one on disk (a file rewritten and back
/// while it was read would otherwise go unnoticed).
pub(crate) fn digests_on_disk(
    policies_dir: &Path,
    schema_dir: &Path,
    invariants_dir: &Path,
) -> (String, String) {
    let mut ignored = Vec::new();
    let schema = read_dir(schema_dir, "cedarschema", &mut ignored);
    let policies = read_dir(policies_dir, "cedar", &mut ignored);
    let invariants = read_dir(invariants_dir, "cedar", &mut ignored);
    (version(&schema, &policies), version(&[], &invariants))
}

/// The files of `dir` ending in `.ext`, by file name; none is an issue.
fn read_dir(dir: &Path, ext: &str, issues: &mut Vec<LoadIssue>) -> Vec<Source> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            issues.push(issue(dir, None, format!("cannot read the directory: {e}")));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == ext))
        .collect();
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if paths.is_empty() {
        issues.push(issue(dir, None, format!("no *.{ext} file")));
    }
    paths
        .into_iter()
        .filter_map(|path| match std::fs::read_to_string(&path) {
            Ok(text) => Some(Source { path, text }),
            Err(e) => {
                issues.push(issue(&path, None, format!("cannot read: {e}")));
                None
            }
        })
        .collect()
}

pub(crate) fn issue(file: &Path, line: Option<usize>, message: String) -> LoadIssue {
    LoadIssue {
        file: file.to_owned(),
        line,
        message,
    }
}

fn load_schema(
    dir: &Path,
    files: &[Source],
    issues: &mut Vec<LoadIssue>,
) -> Option<(Schema, Vec<serde_json::Value>)> {
    let mut fragments = Vec::new();
    let mut json = Vec::new();
    for f in files {
        match SchemaFragment::from_cedarschema_str(&f.text) {
            Ok((fragment, warnings)) => {
                // Warnings (shadowed names and the like) are refused, as the
                // CI refuses policy warnings: the schema is a specification.
                for w in warnings {
                    let (file, line) = locate(&w, files).unwrap_or((&f.path, None));
                    issues.push(issue(file, line, describe(&w)));
                }
                match fragment.clone().to_json_value() {
                    Ok(value) => json.push(value),
                    Err(e) => issues.push(issue(&f.path, None, describe(&e))),
                }
                fragments.push(fragment);
            }
            Err(e) => {
                let (file, line) = locate(&e, std::slice::from_ref(f)).unwrap_or((&f.path, None));
                issues.push(issue(file, line, describe(&e)));
            }
        }
    }
    if fragments.len() != files.len() || files.is_empty() {
        return None;
    }
    match Schema::from_schema_fragments(fragments) {
        Ok(schema) => Some((schema, json)),
        Err(e) => {
            let (file, line) = locate(&e, files)
                .or_else(|| (files.len() == 1).then_some((&files[0].path, None)))
                .unwrap_or((dir, None));
            issues.push(issue(file, line, describe(&e)));
            None
        }
    }
}

/// Parses every file; policy ids come from `@id`, as the Cedar CLI does.
fn load_policies(files: &[Source], issues: &mut Vec<LoadIssue>) -> (PolicySet, Vec<PolicyInfo>) {
    let mut set = PolicySet::new();
    let mut infos: Vec<PolicyInfo> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for f in files {
        let parsed = match PolicySet::from_str(&f.text) {
            Ok(parsed) => parsed,
            Err(errors) => {
                for e in errors.iter() {
                    let line = locate(e, std::slice::from_ref(f)).and_then(|(_, l)| l);
                    issues.push(issue(
                        &f.path,
                        line,
                        format!("parse error: {}", describe(e)),
                    ));
                }
                continue;
            }
        };
        for t in parsed.templates() {
            let line = f.text.find(&t.to_cedar()).map(|at| line_of(&f.text, at));
            issues.push(issue(
                &f.path,
                line,
                "templates (policies with ?principal or ?resource slots) are not used by this model"
                    .into(),
            ));
        }
        // The parser numbers a file's policies policy0, policy1, ... in order.
        let mut in_file: Vec<&Policy> = parsed.policies().collect();
        in_file.sort_by_key(|p| {
            p.id()
                .to_string()
                .trim_start_matches("policy")
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        let mut cursor = 0;
        for p in in_file {
            let offset = p.to_cedar().and_then(|text| {
                f.text[cursor..]
                    .find(&text)
                    .map(|i| (cursor + i, text.len()))
            });
            let line = match offset {
                Some((at, len)) => {
                    cursor = at + len;
                    line_of(&f.text, at)
                }
                None => 0,
            };
            let line_opt = (line > 0).then_some(line);
            let Some(id) = p.annotation("id") else {
                issues.push(issue(
                    &f.path,
                    line_opt,
                    "policy has no @id(\"...\") annotation naming its rule".into(),
                ));
                continue;
            };
            if let Some(&first) = seen.get(id) {
                issues.push(issue(
                    &f.path,
                    line_opt,
                    format!(
                        "duplicate policy id {id:?} (first at {})",
                        infos[first].location()
                    ),
                ));
                continue;
            }
            let renamed = p.new_id(PolicyId::new(id));
            if let Err(e) = set.add(renamed) {
                issues.push(issue(&f.path, line_opt, describe(&e)));
                continue;
            }
            seen.insert(id.to_owned(), infos.len());
            infos.push(PolicyInfo {
                id: id.to_owned(),
                file: f.path.clone(),
                line,
                effect: p.effect(),
                annotations: p
                    .annotations()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                comment: offset.and_then(|(at, _)| comment_above(&f.text, at)),
            });
        }
    }
    (set, infos)
}

/// How many entity dereferences deep a policy may read (RFC 76's level):
/// `principal.partner.distributor.kind` is 3. The entity loader follows
/// every reference an attribute makes, so a slice holds all that a policy
/// within the level can read; a deeper chain is refused here, at load,
/// reload and validate alike, naming the policy.
pub const MAX_DEREF_LEVEL: u32 = 4;

/// Strict validation with the level bound; warnings are refused too (the
/// CI's `--deny-warnings`).
fn validate(
    schema: &Schema,
    policies: &PolicySet,
    infos: &[PolicyInfo],
    files: &[Source],
    issues: &mut Vec<LoadIssue>,
) {
    let result = Validator::new(schema.clone()).validate_with_level(
        policies,
        ValidationMode::Strict,
        MAX_DEREF_LEVEL,
    );
    let by_id: HashMap<&str, &PolicyInfo> = infos.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut report = |policy: &PolicyId, d: &dyn Diagnostic, kind: &str| {
        let info = by_id.get(policy.as_ref() as &str);
        let own_file: Vec<&Source> = files
            .iter()
            .filter(|s| info.is_some_and(|i| i.file == s.path))
            .collect();
        let located = own_file
            .first()
            .and_then(|s| locate(d, std::slice::from_ref(*s)));
        let (file, line) = match (located, info) {
            (Some((file, Some(line))), _) => (file.to_owned(), Some(line)),
            (_, Some(i)) => (i.file.clone(), Some(i.line)),
            (Some((file, None)), None) => (file.to_owned(), None),
            (None, None) => (PathBuf::from("<policies>"), None),
        };
        issues.push(LoadIssue {
            file,
            line,
            message: format!("{kind} in policy {policy}: {}", describe(d)),
        });
    };
    for e in result.validation_errors() {
        report(e.policy_id(), e, "validation error");
    }
    for w in result.validation_warnings() {
        report(w.policy_id(), w, "validation warning");
    }
    // One policy too deep in two places is one problem, said once.
    issues.dedup_by(|a, b| a.to_string() == b.to_string());
}

/// The file and line a diagnostic points at, when its first labelled span
/// reads the same text in one of `files`.
fn locate<'a>(d: &dyn Diagnostic, files: &'a [Source]) -> Option<(&'a Path, Option<usize>)> {
    let label = d.labels()?.next()?;
    let (at, len) = (label.offset(), label.len());
    let quoted = d
        .source_code()
        .and_then(|src| src.read_span(label.inner(), 0, 0).ok())
        .map(|s| s.data().to_vec());
    let matches = |f: &Source| match &quoted {
        Some(bytes) => f.text.as_bytes().get(at..at + len) == Some(bytes.as_slice()),
        None => at <= f.text.len(),
    };
    let f = match files {
        [only] => matches(only).then_some(only),
        _ => files.iter().find(|f| matches(f)),
    }?;
    Some((&f.path, Some(line_of(&f.text, at))))
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The contiguous `//` lines right above `offset`, without section rules
/// (`// ----`, `// ====`), joined with spaces.
fn comment_above(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset];
    let mut lines: Vec<&str> = Vec::new();
    for line in before.lines().rev() {
        let t = line.trim();
        match t.strip_prefix("//") {
            Some(c)
                if !c.trim_start().starts_with("----") && !c.trim_start().starts_with("====") =>
            {
                lines.push(c.trim())
            }
            _ => break,
        }
    }
    // `lines()` of text ending right before the policy: the last element is
    // the line the policy starts on when it does not begin at a line start.
    lines.reverse();
    let joined = lines.join(" ").trim().to_owned();
    (!joined.is_empty()).then_some(joined)
}

/// sha256 over the names and contents of the schema and policy files, hex,
/// first 12 digits.
fn version(schema_files: &[Source], policy_files: &[Source]) -> String {
    let mut h = Sha256::new();
    for (kind, files) in [("schema", schema_files), ("policies", policy_files)] {
        h.update(kind.as_bytes());
        h.update([0]);
        for f in files {
            let name = f.path.file_name().unwrap_or_default().to_string_lossy();
            h.update(name.as_bytes());
            h.update([0]);
            h.update((f.text.len() as u64).to_be_bytes());
            h.update(f.text.as_bytes());
        }
    }
    hex::encode(h.finalize())[..12].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_comments() {
        let text = "// header\n// ====\n// why it exists\n@id(\"x\")\npermit(principal, action, resource);\n";
        let at = text.find("@id").unwrap();
        assert_eq!(line_of(text, at), 4);
        assert_eq!(comment_above(text, at).as_deref(), Some("why it exists"));
        assert_eq!(comment_above("@id(\"x\")", 0), None);
    }
}
