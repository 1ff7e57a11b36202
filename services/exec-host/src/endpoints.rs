//! Lamina's own APIs as function code sees them: fixed ports on the sandbox's `127.0.0.1`
//! (`AWS_ENDPOINT_URL_LAMBDA`, `AWS_ENDPOINT_URL_S3`), redirected by the sandbox's own nftables
//! table to the per-sandbox proxy, which connects only to the configured endpoint. The ports
//! mirror `lamina serve`'s defaults (9000 Lambda, 9002 S3; 9001 is the Runtime API).

use crate::config::Config;

/// Port of the Lambda API inside every sandbox.
pub(crate) const LAMBDA_PORT: u16 = 9000;
/// Port of the S3 API inside every sandbox.
pub(crate) const S3_PORT: u16 = 9002;

/// Checks an endpoint's `host:port` form.
pub(crate) fn check(endpoint: Option<&str>) -> anyhow::Result<()> {
    let Some(endpoint) = endpoint else { return Ok(()) };
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(|| anyhow::anyhow!("{endpoint:?} is not host:port"))?;
    anyhow::ensure!(!host.is_empty() && !host.contains('/'), "{endpoint:?} is not host:port (no scheme or path)");
    anyhow::ensure!(port.parse::<u16>().is_ok_and(|p| p > 0), "bad port in {endpoint:?}");
    Ok(())
}

/// In-sandbox port -> the endpoint it leads to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Endpoints {
    routes: Vec<(u16, &'static str, String)>,
}

impl Endpoints {
    pub(crate) fn from_config(c: &Config) -> Endpoints {
        let mut routes = Vec::new();
        if let Some(e) = &c.lambda_endpoint {
            routes.push((LAMBDA_PORT, "AWS_ENDPOINT_URL_LAMBDA", e.clone()));
        }
        if let Some(e) = &c.s3_endpoint {
            routes.push((S3_PORT, "AWS_ENDPOINT_URL_S3", e.clone()));
        }
        Endpoints { routes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The in-sandbox ports the redirect catches.
    pub(crate) fn ports(&self) -> Vec<u16> {
        self.routes.iter().map(|r| r.0).collect()
    }

    /// Where a connection to in-sandbox `port` goes.
    pub(crate) fn target(&self, port: u16) -> Option<&str> {
        self.routes.iter().find(|r| r.0 == port).map(|r| r.2.as_str())
    }

    /// The variables a sandbox gets: the loopback port inside its own network, or the endpoint
    /// itself when it shares the host's network (it can reach it directly then).
    pub(crate) fn env(&self, own_network: bool) -> Vec<(&'static str, String)> {
        self.routes
            .iter()
            .map(|(port, name, target)| {
                let url = if own_network { format!("http://127.0.0.1:{port}") } else { format!("http://{target}") };
                (*name, url)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_map_fixed_ports_to_the_configured_addresses() {
        let c = Config {
            lambda_endpoint: Some("127.0.0.1:4000".into()),
            s3_endpoint: Some("s3.internal:4002".into()),
            runtimes: Default::default(),
            ..Config::default()
        };
        let e = Endpoints::from_config(&c);
        assert_eq!(e.ports(), vec![9000, 9002]);
        assert_eq!(e.target(9002), Some("s3.internal:4002"));
        assert_eq!(e.target(9001), None);
        assert_eq!(
            e.env(true),
            vec![
                ("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9000".to_string()),
                ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9002".to_string())
            ]
        );
        assert_eq!(e.env(false)[1].1, "http://s3.internal:4002");
        assert!(Endpoints::from_config(&Config { runtimes: Default::default(), ..Config::default() }).is_empty());
    }

    #[test]
    fn endpoints_must_be_host_and_port() {
        assert!(check(None).is_ok());
        assert!(check(Some("127.0.0.1:9000")).is_ok());
        assert!(check(Some("lamina-frontend:9000")).is_ok());
        for bad in ["127.0.0.1", "http://x:1", ":9000", "h:0", "h:x"] {
            assert!(check(Some(bad)).is_err(), "{bad}");
        }
    }
}
