//! The HTTP API: one module per resource, each with its handlers and their request and
//! response types, assembled by [`router`]; the OpenAPI document ([`openapi`]) is generated
//! from the same handlers, so it lists exactly the routes that exist.
//!
//! Every `/api/v1` handler takes a role extractor first (`auth`), so the role a route needs
//! is part of its signature and is checked before anything else is read. Errors are
//! [`ApiError`]s, answered as `application/problem+json`. Bodies are read under size limits
//! (uploads under the plugin limit) and JSON bodies refuse unknown fields (`extract`).
//!
//! The API knows the engine and the store only through [`Engine`]; it never touches the
//! sandbox or sled.

mod auth;
mod error;
mod events;
mod extract;
mod input;
mod job_view;
mod jobs;
mod logs;
mod plugins;
mod system;
mod tokens;
mod workflows;

#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, Uri};
use tokio::sync::watch;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weft_store::StoreError;

pub use error::{ApiError, DefinitionProblem, Location, PROBLEM_JSON, Problem};

/// The request and response bodies, for clients such as the CLI.
pub mod types {
    pub use super::events::{EventPage, EventSchema};
    pub use super::job_view::{AttemptView, ErrorView, JobSummary, JobView, StepView, TaskView};
    pub use super::jobs::{CancelRequest, JobList, StartRequest, Started};
    pub use super::logs::{AttemptLog, StepLogs, TaskLogs};
    pub use super::plugins::{Grants, PluginList, PluginStatusView, PluginView, RequestedView};
    pub use super::system::Health;
    pub use super::tokens::{CreateToken, CreatedToken, TokenList};
    pub use super::workflows::{AppliedView, WorkflowList, WorkflowSummary, WorkflowView};
    pub use crate::access::TokenInfo;
}

use crate::access::Tokens;
use crate::engine::Engine;
use crate::metrics::Metrics;

/// The API's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Largest plugin upload, in bytes; the sandbox refuses larger components anyway.
    pub max_component_bytes: usize,
    /// Largest request body of any other route (JSON, workflow definitions), in bytes.
    pub max_request_body_bytes: usize,
    /// Approve every uploaded plugin with the capabilities it requests. For local
    /// development only: it skips the review that approval is for.
    pub auto_approve: bool,
    /// How long a client told to slow down (429) should wait, in seconds.
    pub retry_after_seconds: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_component_bytes: 32 * 1024 * 1024,
            max_request_body_bytes: 1024 * 1024,
            auto_approve: false,
            retry_after_seconds: 1,
        }
    }
}

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    engine: Engine,
    tokens: Arc<Tokens>,
    metrics: Arc<Metrics>,
    config: Arc<ApiConfig>,
    shutdown: watch::Sender<bool>,
    input_schemas: Arc<input::SchemaCache>,
}

impl AppState {
    /// The state of an API over `engine`. Starts the metrics watcher, so it must be called
    /// inside a tokio runtime.
    pub fn new(engine: Engine, tokens: Tokens, config: ApiConfig) -> Result<AppState, StoreError> {
        let metrics = Metrics::start(&engine)?;
        Ok(AppState {
            engine,
            tokens: Arc::new(tokens),
            metrics,
            config: Arc::new(config),
            shutdown: watch::Sender::new(false),
            input_schemas: Arc::default(),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Tells long-lived responses (event streams) to end, for a graceful shutdown.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once [`AppState::begin_shutdown`] was called.
    pub async fn shutting_down(&self) {
        let mut receiver = self.shutdown.subscribe();
        // An error means the sender is gone, which is a shutdown too.
        _ = receiver.wait_for(|down| *down).await;
    }
}

/// Adds the bearer scheme that every `/api/v1` operation names in its `security`, with the
/// role it requires as the scheme's single "scope" (OpenAPI 3.1 allows role names there).
#[derive(Debug)]
struct BearerAuth;

/// Name of the security scheme in the OpenAPI document.
pub const SECURITY_SCHEME: &str = "bearer";

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Weft",
        description = "Weft's HTTP API: plugins, workflows, jobs, their events and logs. Every \
            /api/v1 operation requires a bearer token whose role (viewer < operator < admin) is \
            at least the one its security requirement names. Errors are application/problem+json.",
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    tags(
        (name = "system", description = "Health, metrics and this document"),
        (name = "plugins", description = "Uploaded plugin builds and their approval"),
        (name = "workflows", description = "Workflow definitions"),
        (name = "jobs", description = "Jobs, their events and step logs"),
        (name = "tokens", description = "API tokens"),
    )
)]
struct ApiDoc;

/// Every route, with its documentation.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(system::healthz))
        .routes(routes!(system::metrics))
        .routes(routes!(system::openapi_document))
        .routes(routes!(plugins::upload, plugins::list))
        .routes(routes!(plugins::by_name))
        .routes(routes!(plugins::by_version))
        .routes(routes!(plugins::approve))
        .routes(routes!(plugins::disable))
        .routes(routes!(workflows::apply, workflows::list))
        .routes(routes!(workflows::latest))
        .routes(routes!(workflows::by_version))
        .routes(routes!(jobs::start))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::show))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::pause))
        .routes(routes!(jobs::resume))
        .routes(routes!(events::events))
        .routes(routes!(logs::step_logs))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// The API's router over `state`.
pub fn router(state: AppState) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read by the extractors in `extract`, each under its own limit.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(error::log_internal_errors))
        .with_state(state)
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}
