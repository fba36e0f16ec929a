//! What each of Claude Code's providers needs in the settings besides its credential: which
//! provider a setup means (`--provider`, the source's kind, the proxy route's), its region or
//! location, its project, its workspace.

use credd_proto::claude_code::{self as cc, Provider};
use credd_proto::{Credential, StatusReport};
use serde_json::{Map, Value, json};

use super::{Plan, endpoint_lines};

/// The provider `--provider` names, else `default`; one a source of `kind` can serve.
pub(super) fn chosen_provider(
    plan: &Plan,
    default: Provider,
    kind: &str,
) -> Result<Provider, String> {
    let provider = plan.provider.unwrap_or(default);
    let fits = match kind {
        "aws" => matches!(provider, cc::BEDROCK | cc::MANTLE | cc::ANTHROPIC_AWS),
        _ => matches!(provider, cc::VERTEX | cc::ANTHROPIC_GOOGLE_CLOUD),
    };
    if !fits {
        return Err(format!(
            "--provider {} does not take the credentials of an {kind} source",
            provider.name
        ));
    }
    Ok(provider)
}

/// The provider `source`'s proxy route speaks (none for a gateway), as its environment in
/// `status` chooses it; `--provider`, if given, must name it.
pub(super) fn proxy_provider(
    plan: &Plan,
    status: &StatusReport,
    source: &str,
) -> Result<Option<Provider>, String> {
    let lines = match plan.tcp {
        true => endpoint_lines(status, source, "proxy-port", "proxy = { port = PORT }")?,
        false => endpoint_lines(status, source, "proxy", "proxy")?,
    };
    let speaks = cc::PROVIDERS
        .into_iter()
        .find(|p| lines.iter().any(|l| *l == format!("{}=1", p.selection)));
    match (plan.provider, speaks) {
        (Some(asked), Some(speaks)) if asked != speaks => Err(format!(
            "the proxy of `{source}` speaks {}, not {}: set `provider = \"{}\"` in its `proxy` table in the config, or leave --provider out",
            speaks.name, asked.name, asked.name
        )),
        (Some(asked), None) => Err(format!(
            "the proxy of `{source}` is a gateway's, not {}",
            asked.name
        )),
        _ => Ok(speaks),
    }
}

/// `--workspace`, which `provider` needs.
pub(super) fn workspace(plan: &Plan, provider: Provider) -> Result<String, String> {
    let workspace = plan.workspace.clone().ok_or_else(|| {
        format!(
            "{} needs the workspace's ID: pass --workspace ID",
            provider.name
        )
    })?;
    if !cc::is_workspace_id(&workspace) {
        return Err(format!("`{workspace}` is not a workspace ID"));
    }
    Ok(workspace)
}

/// The region Bedrock is used in: `--region`, else the source's.
pub(super) fn bedrock_region(
    plan: &Plan,
    source: &str,
    credential: &Credential,
) -> Result<String, String> {
    plan.region
        .clone()
        .or_else(|| credential.metadata.region.clone())
        .ok_or_else(|| {
            format!("source `{source}` names no region; pass --region (Bedrock needs AWS_REGION)")
        })
}

/// A Google provider's project (the source's) and location (`--region`, else global): Vertex
/// AI's `ANTHROPIC_VERTEX_PROJECT_ID` and `CLOUD_ML_REGION`, or Claude on Google Cloud's
/// `ANTHROPIC_GOOGLE_CLOUD_*`, with its workspace (`--workspace`).
pub(super) fn google_env(
    plan: &Plan,
    source: &str,
    credential: &Credential,
    provider: Provider,
    env: &mut Map<String, Value>,
) -> Result<(), String> {
    let (project_var, location_var) = if provider == cc::VERTEX {
        ("ANTHROPIC_VERTEX_PROJECT_ID", "CLOUD_ML_REGION")
    } else {
        (
            "ANTHROPIC_GOOGLE_CLOUD_PROJECT",
            "ANTHROPIC_GOOGLE_CLOUD_LOCATION",
        )
    };
    let project = credential.metadata.project.as_ref().ok_or_else(|| {
        format!("source `{source}` knows no project; set `project = \"...\"` in its table in the config ({} needs {project_var})", provider.title)
    })?;
    env.insert(project_var.into(), json!(project));
    env.insert(
        location_var.into(),
        json!(plan.region.as_deref().unwrap_or("global")),
    );
    if provider == cc::ANTHROPIC_GOOGLE_CLOUD {
        env.insert(
            "ANTHROPIC_GOOGLE_CLOUD_WORKSPACE_ID".into(),
            json!(workspace(plan, provider)?),
        );
    }
    Ok(())
}
