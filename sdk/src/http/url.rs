//! Splits an `http(s)://` URL into the parts an outgoing request is made of: scheme,
//! authority, and path with query.
//!
//! Deliberately small: the host re-validates every part, so this only has to reject what
//! would otherwise be silently misread (credentials, missing host, other schemes) and to
//! drop the fragment, which never goes on the wire.

use super::HttpError;

/// The scheme of a request URL; only these two are supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) scheme: Scheme,
    /// `host` or `host:port`.
    pub(crate) authority: String,
    /// Starts with `/`; includes `?query` if there is one.
    pub(crate) path_with_query: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains whitespace or control characters"));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("it has no `scheme://`"))?;
        let scheme = if scheme.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else if scheme.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else {
            return Err(invalid("only `http` and `https` are supported"));
        };
        let rest = rest
            .split_once('#')
            .map_or(rest, |(before, _fragment)| before);
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_with_query) = rest.split_at(authority_end);
        if authority.is_empty() {
            return Err(invalid("it has no host"));
        }
        if authority.contains('@') {
            return Err(invalid(
                "credentials in urls are not supported; send an `authorization` header",
            ));
        }
        let path_with_query = match path_with_query.chars().next() {
            None => "/".to_owned(),
            Some('?') => format!("/{path_with_query}"),
            Some(_) => path_with_query.to_owned(),
        };
        Ok(Self {
            scheme,
            authority: authority.to_owned(),
            path_with_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> (Scheme, String, String) {
        let target = Target::parse(url).unwrap();
        (target.scheme, target.authority, target.path_with_query)
    }

    #[test]
    fn splits_urls_into_request_parts() {
        assert_eq!(
            parse("https://api.example.com/v1/items?page=2#top"),
            (
                Scheme::Https,
                "api.example.com".into(),
                "/v1/items?page=2".into()
            )
        );
        assert_eq!(
            parse("http://localhost:8080"),
            (Scheme::Http, "localhost:8080".into(), "/".into())
        );
        assert_eq!(
            parse("HTTP://example.com?q=1"),
            (Scheme::Http, "example.com".into(), "/?q=1".into())
        );
    }

    #[test]
    fn rejects_what_it_would_misread() {
        for url in [
            "example.com/path",
            "ftp://example.com/",
            "https:///path",
            "https://user:secret@example.com/",
            "https://example.com/a b",
        ] {
            let error = Target::parse(url).unwrap_err();
            assert!(
                matches!(error, HttpError::InvalidUrl { .. }),
                "{url}: {error}"
            );
        }
    }
}
