//! `/api/v1/plugins`: uploading plugin builds, the catalogue, and approving or disabling a
//! build. A build runs only once approved, with exactly the grants given then.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_domain::PluginName;
use weft_domain::definition::{MAX_FUEL, MAX_MEMORY_BYTES, MAX_TIMEOUT_MS, MIN_MEMORY_BYTES};
use weft_store::{PluginGrants, PluginRecord, PluginStatus};

use super::AppState;
use super::auth::{Admin, Viewer};
use super::error::{ApiError, Denied, Location, Problem};
use super::extract::{JsonBody, PathParams, media_type, parse_param, read_body};
use crate::engine::PluginError;

/// Media type of a plugin upload.
const WASM: &str = "application/wasm";

/// Whether jobs may run a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PluginStatusView {
    /// Uploaded, waiting for approval.
    Pending,
    /// Jobs may run it.
    Approved,
    /// Withdrawn: its steps wait until it is approved again.
    Disabled,
}

/// Capabilities a plugin asks for.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestedView {
    /// Hosts it wants to reach over HTTP.
    pub http_hosts: Vec<String>,
    /// Whether it wants the key-value store.
    pub kv: bool,
}

/// Capabilities and limits an admin granted a plugin. Absent limits are the daemon's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Hosts it may reach over HTTP: `host`, `host:port` or `*.domain`.
    #[serde(default)]
    pub http_hosts: Vec<String>,
    /// Whether it may use the key-value store.
    #[serde(default)]
    pub kv: bool,
    /// Fuel of one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Deadline of one attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Memory of one attempt, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// One uploaded plugin build.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginView {
    /// Digest of the component: `sha256:<hex>`.
    pub digest: String,
    /// The plugin's name.
    pub name: String,
    /// The plugin's version (semver).
    pub version: String,
    /// What it does.
    pub description: String,
    /// Whether jobs may run it.
    pub status: PluginStatusView,
    /// What it asks for.
    pub requested: RequestedView,
    /// What it was granted.
    pub grants: Grants,
    /// Size of the component, in bytes.
    pub size_bytes: u64,
    /// When it was uploaded, in milliseconds since the Unix epoch.
    pub uploaded_at: u64,
    /// When it was last approved, in milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<u64>,
    /// JSON Schema of a step's input, if the plugin declares one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// JSON Schema of a step's output, if the plugin declares one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

impl From<PluginRecord> for PluginView {
    fn from(record: PluginRecord) -> Self {
        PluginView {
            digest: record.digest.to_string(),
            name: record.name.to_string(),
            version: record.version.to_string(),
            description: record.description,
            status: match record.status {
                PluginStatus::Pending => PluginStatusView::Pending,
                PluginStatus::Approved => PluginStatusView::Approved,
                PluginStatus::Disabled => PluginStatusView::Disabled,
            },
            requested: RequestedView {
                http_hosts: record.requested.http_hosts,
                kv: record.requested.kv,
            },
            grants: Grants {
                http_hosts: record.grants.http_hosts,
                kv: record.grants.kv,
                fuel: record.grants.fuel,
                deadline_ms: record.grants.deadline_ms,
                memory_bytes: record.grants.memory_bytes,
            },
            size_bytes: record.size_bytes,
            uploaded_at: record.uploaded_at.as_unix_ms(),
            approved_at: record.approved_at.map(|t| t.as_unix_ms()),
            input_schema: record.input_schema,
            output_schema: record.output_schema,
        }
    }
}

/// A list of plugin builds, by name and then version.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginList {
    /// The builds.
    pub plugins: Vec<PluginView>,
}

/// Path of one plugin name.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NamePath {
    /// The plugin's name.
    pub name: String,
}

/// Path of one plugin build.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    /// The plugin's name.
    pub name: String,
    /// The plugin's version (semver).
    pub version: String,
}

fn plugin_error(error: PluginError) -> ApiError {
    match error {
        PluginError::Invalid(e) => ApiError::Unprocessable {
            detail: format!("the component was refused: {e}"),
            at: Location::body(""),
        },
        PluginError::Conflict { .. } => ApiError::Conflict(error.to_string()),
        PluginError::NotFound(what) => ApiError::NotFound {
            detail: format!("no plugin {what}"),
            at: Location::Request,
        },
        PluginError::InvalidGrant(detail) => ApiError::Unprocessable {
            detail: format!("invalid grant: {detail}"),
            at: Location::body(""),
        },
        PluginError::Store(e) => e.into(),
    }
}

/// Uploads a plugin build: the body is the component (`application/wasm`). A new build is
/// stored pending approval (201); the same bytes again return the stored build (200); another
/// build with the same name and version is a conflict (409).
#[utoipa::path(post, path = "/api/v1/plugins", operation_id = "upload_plugin", tag = "plugins",
    security(("bearer" = ["admin"])),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "The component"),
    responses(
        (status = 201, description = "Stored, pending approval", body = PluginView),
        (status = 200, description = "Already stored", body = PluginView),
        (status = 409, description = "The name and version belong to another build", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the plugin size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/wasm", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The component was refused", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn upload(
    admin: Admin,
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<PluginView>), ApiError> {
    if media_type(request.headers()).as_deref() != Some(WASM) {
        return Err(ApiError::UnsupportedMediaType { expected: WASM });
    }
    let bytes = read_body(request, state.config.max_component_bytes).await?;
    let (mut record, created) = state
        .engine
        .add_plugin(&bytes)
        .await
        .map_err(plugin_error)?;
    if state.config.auto_approve && record.status == PluginStatus::Pending {
        let grants = PluginGrants {
            http_hosts: record.requested.http_hosts.clone(),
            kv: record.requested.kv,
            ..PluginGrants::default()
        };
        record = state
            .engine
            .approve_plugin(&record.digest, grants)
            .await
            .map_err(plugin_error)?;
    }
    if created {
        tracing::info!(token = admin.token(), plugin = %record.name, version = %record.version, digest = %record.digest, "plugin uploaded");
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record.into())))
}

/// Every plugin build, by name and then version.
#[utoipa::path(get, path = "/api/v1/plugins", operation_id = "list_plugins", tag = "plugins",
    security(("bearer" = ["viewer"])),
    responses((status = 200, description = "The catalogue", body = PluginList), Denied))]
pub async fn list(_: Viewer, State(state): State<AppState>) -> Result<Json<PluginList>, ApiError> {
    let plugins = state.engine.store().plugins()?;
    Ok(Json(PluginList {
        plugins: plugins.into_iter().map(PluginView::from).collect(),
    }))
}

fn builds_named(state: &AppState, name: &str) -> Result<Vec<PluginRecord>, ApiError> {
    let name: PluginName = parse_param("name", name)?;
    let builds: Vec<PluginRecord> = state
        .engine
        .store()
        .plugins()?
        .into_iter()
        .filter(|p| p.name == name)
        .collect();
    if builds.is_empty() {
        return Err(ApiError::NotFound {
            detail: format!("no plugin named {name}"),
            at: Location::parameter("name"),
        });
    }
    Ok(builds)
}

fn build(state: &AppState, path: &VersionPath) -> Result<PluginRecord, ApiError> {
    let version: Version = parse_param("version", &path.version)?;
    builds_named(state, &path.name)?
        .into_iter()
        .find(|p| p.version == version)
        .ok_or_else(|| ApiError::NotFound {
            detail: format!("plugin {} has no version {version}", path.name),
            at: Location::parameter("version"),
        })
}

/// Every build of one plugin, oldest version first.
#[utoipa::path(get, path = "/api/v1/plugins/{name}", operation_id = "get_plugin_builds", tag = "plugins",
    security(("bearer" = ["viewer"])), params(NamePath),
    responses(
        (status = 200, description = "The plugin's builds", body = PluginList),
        (status = 404, description = "No such plugin", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn by_name(
    _: Viewer,
    State(state): State<AppState>,
    PathParams(path): PathParams<NamePath>,
) -> Result<Json<PluginList>, ApiError> {
    let plugins = builds_named(&state, &path.name)?;
    Ok(Json(PluginList {
        plugins: plugins.into_iter().map(PluginView::from).collect(),
    }))
}

/// One plugin build.
#[utoipa::path(get, path = "/api/v1/plugins/{name}/{version}", operation_id = "get_plugin_build", tag = "plugins",
    security(("bearer" = ["viewer"])), params(VersionPath),
    responses(
        (status = 200, description = "The build", body = PluginView),
        (status = 404, description = "No such plugin or version", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn by_version(
    _: Viewer,
    State(state): State<AppState>,
    PathParams(path): PathParams<VersionPath>,
) -> Result<Json<PluginView>, ApiError> {
    Ok(Json(build(&state, &path)?.into()))
}

/// Checks grants before they reach the engine, pointing at the first bad member.
fn check_grants(grants: &Grants) -> Result<(), ApiError> {
    for (index, host) in grants.http_hosts.iter().enumerate() {
        if let Err(e) = host.parse::<weft_sandbox::HostPattern>() {
            return Err(ApiError::Unprocessable {
                detail: format!("`{host}` is not a host pattern: {e}"),
                at: Location::body(format!("/http_hosts/{index}")),
            });
        }
    }
    let ranges = [
        ("fuel", grants.fuel, 1, MAX_FUEL),
        ("deadline_ms", grants.deadline_ms, 1, MAX_TIMEOUT_MS),
        (
            "memory_bytes",
            grants.memory_bytes,
            MIN_MEMORY_BYTES,
            MAX_MEMORY_BYTES,
        ),
    ];
    for (field, value, min, max) in ranges {
        if let Some(value) = value
            && !(min..=max).contains(&value)
        {
            return Err(ApiError::Unprocessable {
                detail: format!("{field} must be between {min} and {max}, got {value}"),
                at: Location::body(format!("/{field}")),
            });
        }
    }
    Ok(())
}

/// Approves a build with exactly these grants (replacing earlier ones); only approved builds
/// run. Approving a disabled build enables it again.
#[utoipa::path(post, path = "/api/v1/plugins/{name}/{version}/approve", operation_id = "approve_plugin", tag = "plugins",
    security(("bearer" = ["admin"])), params(VersionPath), request_body = Grants,
    responses(
        (status = 200, description = "Approved", body = PluginView),
        (status = 404, description = "No such plugin or version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A grant is invalid", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn approve(
    admin: Admin,
    State(state): State<AppState>,
    PathParams(path): PathParams<VersionPath>,
    JsonBody(grants): JsonBody<Grants>,
) -> Result<Json<PluginView>, ApiError> {
    let record = build(&state, &path)?;
    check_grants(&grants)?;
    let grants = PluginGrants {
        http_hosts: grants.http_hosts,
        kv: grants.kv,
        fuel: grants.fuel,
        deadline_ms: grants.deadline_ms,
        memory_bytes: grants.memory_bytes,
    };
    let record = state
        .engine
        .approve_plugin(&record.digest, grants)
        .await
        .map_err(plugin_error)?;
    tracing::info!(token = admin.token(), plugin = %record.name, version = %record.version, grants = ?record.grants, "plugin approved");
    Ok(Json(record.into()))
}

/// Disables a build: steps that would run it wait until it is approved again.
#[utoipa::path(post, path = "/api/v1/plugins/{name}/{version}/disable", operation_id = "disable_plugin", tag = "plugins",
    security(("bearer" = ["admin"])), params(VersionPath),
    responses(
        (status = 200, description = "Disabled", body = PluginView),
        (status = 404, description = "No such plugin or version", body = Problem, content_type = "application/problem+json"),
        Denied,
    ))]
pub async fn disable(
    admin: Admin,
    State(state): State<AppState>,
    PathParams(path): PathParams<VersionPath>,
) -> Result<Json<PluginView>, ApiError> {
    let record = build(&state, &path)?;
    let record = state
        .engine
        .disable_plugin(&record.digest)
        .await
        .map_err(plugin_error)?;
    tracing::info!(token = admin.token(), plugin = %record.name, version = %record.version, "plugin disabled");
    Ok(Json(record.into()))
}
