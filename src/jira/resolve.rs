//! Host name resolution for the Jira client, remembered for a short while.
//!
//! ureq resolves the host of every request, pooled connection or not, and with a timeout set
//! it does so on a freshly spawned thread: one thread and one DNS lookup per Jira call. The
//! executor makes one or two calls per incident, always to the same site, so the answer is
//! kept for [`CachedResolver::TTL`] (a site moving addresses is picked up within it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;
use ureq::Error;

#[derive(Debug, Default)]
pub struct CachedResolver {
    inner: DefaultResolver,
    /// scheme://authority -> addresses and when they were looked up.
    known: Mutex<HashMap<String, (ResolvedSocketAddrs, Instant)>>,
}

impl CachedResolver {
    /// How long a lookup is reused.
    pub const TTL: Duration = Duration::from_secs(30);
}

impl Resolver for CachedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        if let Ok(known) = self.known.lock() {
            if let Some((addrs, at)) = known.get(&key) {
                if at.elapsed() < Self::TTL {
                    return Ok(addrs.clone());
                }
            }
        }
        // Failures are not remembered: the next call asks again.
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if let Ok(mut known) = self.known.lock() {
            known.insert(key, (addrs.clone(), Instant::now()));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_is_reused_within_its_ttl() {
        let resolver = CachedResolver::default();
        let config = Config::default();
        let uri: Uri = "http://127.0.0.1:9/rest/api/3/issue".parse().unwrap();
        let timeout = NextTimeout::default();
        let first = resolver.resolve(&uri, &config, timeout).unwrap();
        assert_eq!(first.first().map(|a| a.port()), Some(9));
        // A remembered answer is returned as is, even one no lookup would give.
        let planted: Uri = "http://planted.invalid:80/".parse().unwrap();
        resolver.known.lock().unwrap().insert(
            "http://planted.invalid:80".into(),
            (first.clone(), Instant::now()),
        );
        assert_eq!(resolver.resolve(&planted, &config, timeout).unwrap(), first);
        // Past its TTL it is looked up again (and this name does not resolve).
        resolver.known.lock().unwrap().insert(
            "http://planted.invalid:80".into(),
            (first, Instant::now() - CachedResolver::TTL),
        );
        assert!(resolver.resolve(&planted, &config, timeout).is_err());
    }
}
