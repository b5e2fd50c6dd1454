//! `/api/v1/workflows`: applying workflow definitions (JSON or YAML) and reading them back.
//! Versions are immutable: applying the same version with other content is a conflict.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_domain::{SourceFormat, WorkflowName};

use super::AppState;
use super::auth::{Admin, Viewer};
use super::error::{ApiError, Denied, Location, Problem};
use super::extract::{PathParams, media_type, parse_param, read_body};
use crate::engine::ApplyError;

/// What applying a definition did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppliedView {
    /// The workflow.
    pub name: String,
    /// The version applied.
    pub version: u32,
    /// False when this version was already stored with the same content.
    pub created: bool,
}

/// One workflow and its versions.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowSummary {
    /// The workflow.
    pub name: String,
    /// Its highest version.
    pub latest_version: u32,
    /// Every stored version, ascending.
    pub versions: Vec<u32>,
}

/// The stored workflows, by name.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowList {
    /// The workflows.
    pub workflows: Vec<WorkflowSummary>,
}

/// One version of a workflow definition, in its normalized form (every default written out).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowView {
    /// The workflow.
    pub name: String,
    /// The version.
    pub version: u32,
    /// The definition.
    pub definition: Value,
}

/// Path of one workflow.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NamePath {
    /// The workflow's name.
    pub name: String,
}

/// Path of one version of a workflow.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    /// The workflow's name.
    pub name: String,
    /// The version.
    pub version: String,
}

/// The notation of a definition upload, from its media type.
fn source_format(media: Option<&str>) -> Result<SourceFormat, ApiError> {
    match media {
        Some("application/json") => Ok(SourceFormat::Json),
        Some("application/yaml" | "application/x-yaml" | "text/yaml") => Ok(SourceFormat::Yaml),
        _ => Err(ApiError::UnsupportedMediaType {
            expected: "application/json or application/yaml",
        }),
    }
}

/// Creates a workflow definition, or a new version of one. The body is the definition in
/// JSON or YAML. Every problem is reported at once, each with its path (422).
#[utoipa::path(post, path = "/api/v1/workflows", operation_id = "apply_workflow", tag = "workflows",
    security(("bearer" = ["admin"])),
    request_body(description = "The definition", content(
        (Object = "application/json"),
        (String = "application/yaml"),
    )),
    responses(
        (status = 201, description = "Stored", body = AppliedView),
        (status = 200, description = "This version was already stored with the same content", body = AppliedView),
        (status = 409, description = "This version exists with other content", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor YAML", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The definition has problems, listed in `problems`", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn apply(
    admin: Admin,
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<AppliedView>), ApiError> {
    let format = source_format(media_type(request.headers()).as_deref())?;
    let bytes = read_body(request, state.config.max_request_body_bytes).await?;
    let source = std::str::from_utf8(&bytes).map_err(|e| ApiError::BadRequest {
        detail: format!("the definition is not UTF-8: {e}"),
        at: Location::body(""),
    })?;
    let applied = state
        .engine
        .apply_definition(source, format)
        .await
        .map_err(|e| match e {
            ApplyError::Invalid(problems) => ApiError::InvalidDefinition(problems),
            ApplyError::Conflict { .. } => ApiError::Conflict(e.to_string()),
            ApplyError::Store(e) => e.into(),
        })?;
    if applied.created {
        tracing::info!(token = admin.token(), workflow = %applied.name, version = applied.version, "workflow applied");
    }
    let status = if applied.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(AppliedView {
            name: applied.name.to_string(),
            version: applied.version,
            created: applied.created,
        }),
    ))
}

/// Every workflow, with its versions.
#[utoipa::path(get, path = "/api/v1/workflows", operation_id = "list_workflows", tag = "workflows",
    security(("bearer" = ["viewer"])),
    responses((status = 200, description = "The workflows", body = WorkflowList), Denied))]
pub async fn list(
    _: Viewer,
    State(state): State<AppState>,
) -> Result<Json<WorkflowList>, ApiError> {
    let mut by_name: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (name, version) in state.engine.store().definitions()? {
        by_name.entry(name.to_string()).or_default().push(version);
    }
    let workflows = by_name
        .into_iter()
        .map(|(name, mut versions)| {
            versions.sort_unstable();
            WorkflowSummary {
                name,
                latest_version: versions.last().copied().unwrap_or_default(),
                versions,
            }
        })
        .collect();
    Ok(Json(WorkflowList { workflows }))
}

fn not_found(detail: String, parameter: &str) -> ApiError {
    ApiError::NotFound {
        detail,
        at: Location::parameter(parameter),
    }
}

/// The latest version of a workflow.
#[utoipa::path(get, path = "/api/v1/workflows/{name}", operation_id = "get_workflow", tag = "workflows",
    security(("bearer" = ["viewer"])), params(NamePath),
    responses(
        (status = 200, description = "The latest version", body = WorkflowView),
        (status = 404, description = "No such workflow", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn latest(
    _: Viewer,
    State(state): State<AppState>,
    PathParams(path): PathParams<NamePath>,
) -> Result<Json<WorkflowView>, ApiError> {
    let name: WorkflowName = parse_param("name", &path.name)?;
    let (version, definition) = state
        .engine
        .store()
        .latest_definition(&name)?
        .ok_or_else(|| not_found(format!("no workflow named {name}"), "name"))?;
    Ok(Json(WorkflowView {
        name: name.to_string(),
        version,
        definition,
    }))
}

/// One version of a workflow.
#[utoipa::path(get, path = "/api/v1/workflows/{name}/versions/{version}", operation_id = "get_workflow_version", tag = "workflows",
    security(("bearer" = ["viewer"])), params(VersionPath),
    responses(
        (status = 200, description = "The version", body = WorkflowView),
        (status = 404, description = "No such workflow or version", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn by_version(
    _: Viewer,
    State(state): State<AppState>,
    PathParams(path): PathParams<VersionPath>,
) -> Result<Json<WorkflowView>, ApiError> {
    let name: WorkflowName = parse_param("name", &path.name)?;
    let version: u32 = parse_param("version", &path.version)?;
    let definition = state
        .engine
        .store()
        .definition(&name, version)?
        .ok_or_else(|| {
            not_found(
                format!("workflow {name} has no version {version}"),
                "version",
            )
        })?;
    Ok(Json(WorkflowView {
        name: name.to_string(),
        version,
        definition,
    }))
}
