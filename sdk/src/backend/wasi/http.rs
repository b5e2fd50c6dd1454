//! Sends a [`Request`] through `wasi:http/outgoing-handler` and reads the whole response.
//!
//! The order of calls matters. The request is handed to the host before its body is
//! written, because the host buffers only a small part of an outgoing body and consumes it
//! while sending: writing a large body first would block forever. Child resources (streams,
//! pollables, bodies) are dropped before their parents, as the component model requires.

use super::bindings::wasi::http::outgoing_handler;
use super::bindings::wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, HeaderError, IncomingBody, IncomingResponse,
    Method as WasiMethod, OutgoingBody, OutgoingRequest, RequestOptions, Scheme as WasiScheme,
};
use super::bindings::wasi::io::streams::StreamError;
use crate::http::url::Scheme;
use crate::http::{HttpError, Method, Request, Response};

/// Largest write `blocking-write-and-flush` accepts in one call.
const WRITE_CHUNK_BYTES: usize = 4096;

/// How much to ask for per `blocking-read`; the host may return less.
const READ_CHUNK_BYTES: u64 = 64 * 1024;

pub(super) fn send(request: &Request) -> Result<Response, HttpError> {
    let outgoing = outgoing_request(request)?;
    let body = outgoing
        .body()
        .map_err(|()| HttpError::Host("the request body was already taken".to_owned()))?;
    let options = request_options(request);
    let future = outgoing_handler::handle(outgoing, options).map_err(from_error_code)?;
    if let Err(write_error) = write_body(body, &request.body) {
        // A failed write usually means the request itself failed (denied, refused): that
        // error says more than the broken stream does.
        return Err(wait_for_response(&future).err().unwrap_or(write_error));
    }
    let response = wait_for_response(&future)?;
    read_response(response)
}

fn outgoing_request(request: &Request) -> Result<OutgoingRequest, HttpError> {
    let headers = Fields::new();
    for (name, value) in &request.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|error| header_error(name, &error))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    outgoing
        .set_method(&wasi_method(&request.method))
        .map_err(|()| {
            HttpError::InvalidRequest(format!("`{}` is not a valid method", request.method))
        })?;
    let scheme = match request.target.scheme {
        Scheme::Http => WasiScheme::Http,
        Scheme::Https => WasiScheme::Https,
    };
    let invalid_url = |reason: &str| HttpError::InvalidUrl {
        url: request.url.clone(),
        reason: reason.to_owned(),
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid_url("the scheme was refused"))?;
    outgoing
        .set_authority(Some(&request.target.authority))
        .map_err(|()| invalid_url("the host is not valid"))?;
    outgoing
        .set_path_with_query(Some(&request.target.path_with_query))
        .map_err(|()| invalid_url("the path or query is not valid"))?;
    Ok(outgoing)
}

fn wasi_method(method: &Method) -> WasiMethod {
    match method {
        Method::Get => WasiMethod::Get,
        Method::Head => WasiMethod::Head,
        Method::Post => WasiMethod::Post,
        Method::Put => WasiMethod::Put,
        Method::Delete => WasiMethod::Delete,
        Method::Connect => WasiMethod::Connect,
        Method::Options => WasiMethod::Options,
        Method::Trace => WasiMethod::Trace,
        Method::Patch => WasiMethod::Patch,
        Method::Other(other) => WasiMethod::Other(other.clone()),
    }
}

fn header_error(name: &str, error: &HeaderError) -> HttpError {
    let reason = match error {
        HeaderError::InvalidSyntax => "is not a valid header",
        HeaderError::Forbidden => "is a header plugins may not set",
        HeaderError::Immutable => "cannot be changed",
    };
    HttpError::InvalidRequest(format!("`{name}` {reason}"))
}

/// Every phase gets the same bound. A host that does not support one of them keeps its
/// own default for it, which is the documented meaning of an unsupported option.
fn request_options(request: &Request) -> Option<RequestOptions> {
    let timeout = request.timeout?;
    let nanoseconds = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let options = RequestOptions::new();
    let _unsupported = options.set_connect_timeout(Some(nanoseconds));
    let _unsupported = options.set_first_byte_timeout(Some(nanoseconds));
    let _unsupported = options.set_between_bytes_timeout(Some(nanoseconds));
    Some(options)
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), HttpError> {
    {
        let stream = body
            .write()
            .map_err(|()| HttpError::Host("the request body stream was already taken".into()))?;
        for chunk in bytes.chunks(WRITE_CHUNK_BYTES) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|error| stream_error(error, "sending the request body"))?;
        }
        // The stream is a child of the body: it must be gone before `finish`.
    }
    OutgoingBody::finish(body, None).map_err(from_error_code)
}

fn wait_for_response(future: &FutureIncomingResponse) -> Result<IncomingResponse, HttpError> {
    // The pollable is a child of the future; it is dropped at the end of this statement.
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(code))) => Err(from_error_code(code)),
        Some(Err(())) => Err(HttpError::Host("the response was already taken".to_owned())),
        None => Err(HttpError::Host(
            "the response was not ready after waiting for it".to_owned(),
        )),
    }
}

fn read_response(response: IncomingResponse) -> Result<Response, HttpError> {
    let mut result = Response::new(response.status());
    for (name, value) in response.headers().entries() {
        result = result.with_header(name, String::from_utf8_lossy(&value));
    }
    let body = response
        .consume()
        .map_err(|()| HttpError::Host("the response body was already taken".to_owned()))?;
    let bytes = read_body(&body)?;
    // Trailers are not exposed; dropping the future ignores them.
    drop(IncomingBody::finish(body));
    Ok(result.with_body(bytes))
}

fn read_body(body: &IncomingBody) -> Result<Vec<u8>, HttpError> {
    let stream = body
        .stream()
        .map_err(|()| HttpError::Host("the response body stream was already taken".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK_BYTES) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(error) => return Err(stream_error(error, "receiving the response body")),
        }
    }
}

fn stream_error(error: StreamError, doing: &str) -> HttpError {
    match error {
        StreamError::Closed => HttpError::Body(format!("the stream closed while {doing}")),
        StreamError::LastOperationFailed(error) => {
            match super::bindings::wasi::http::types::http_error_code(&error) {
                Some(code) => from_error_code(code),
                None => HttpError::Body(format!("{doing}: {}", error.to_debug_string())),
            }
        }
    }
}

/// Maps the host's reasons for failing a request onto [`HttpError`]. Only an explicit
/// denial becomes [`HttpError::Denied`], so that plugins can tell it apart.
fn from_error_code(code: ErrorCode) -> HttpError {
    let detail = describe_error_code(&code);
    match code {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => HttpError::Denied,
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => HttpError::Timeout(detail),
        ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::HttpResponseIncomplete => HttpError::Connection(detail),
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => HttpError::Tls(detail),
        ErrorCode::HttpRequestLengthRequired
        | ErrorCode::HttpRequestBodySize(_)
        | ErrorCode::HttpRequestMethodInvalid
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::HttpRequestUriTooLong
        | ErrorCode::HttpRequestHeaderSectionSize(_)
        | ErrorCode::HttpRequestHeaderSize(_)
        | ErrorCode::HttpRequestTrailerSectionSize(_)
        | ErrorCode::HttpRequestTrailerSize(_) => HttpError::InvalidRequest(detail),
        ErrorCode::HttpResponseHeaderSectionSize(_)
        | ErrorCode::HttpResponseHeaderSize(_)
        | ErrorCode::HttpResponseBodySize(_)
        | ErrorCode::HttpResponseTrailerSectionSize(_)
        | ErrorCode::HttpResponseTrailerSize(_)
        | ErrorCode::HttpResponseTransferCoding(_)
        | ErrorCode::HttpResponseContentCoding(_)
        | ErrorCode::HttpUpgradeFailed
        | ErrorCode::HttpProtocolError
        | ErrorCode::LoopDetected => HttpError::Protocol(detail),
        ErrorCode::ConfigurationError | ErrorCode::InternalError(_) => HttpError::Host(detail),
    }
}

/// The WIT case name in words (`connection-read-timeout` -> `connection read timeout`),
/// followed by what the host said, for the cases that carry a message.
fn describe_error_code(code: &ErrorCode) -> String {
    let debug = format!("{code:?}");
    let case = debug.trim_start_matches("ErrorCode::");
    let name = case.split('(').next().unwrap_or(case);
    let mut words = String::new();
    for character in name.chars() {
        if character.is_ascii_uppercase() && !words.is_empty() {
            words.push(' ');
        }
        words.push(character.to_ascii_lowercase());
    }
    let said = match code {
        ErrorCode::DnsError(payload) => payload.rcode.clone(),
        ErrorCode::TlsAlertReceived(payload) => payload.alert_message.clone(),
        ErrorCode::HttpResponseTransferCoding(said)
        | ErrorCode::HttpResponseContentCoding(said)
        | ErrorCode::InternalError(said) => said.clone(),
        _ => None,
    };
    match said {
        Some(said) => format!("{words}: {said}"),
        None => words,
    }
}
