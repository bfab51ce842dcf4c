//! `switchboard healthcheck`: one `GET /healthz` to a running server, for a container's
//! HEALTHCHECK or a process supervisor, from the binary itself (a minimal image has no curl).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::failed;

/// The `/healthz` URL of a server listening on `listen` (`http.listen`): an unspecified address
/// (`0.0.0.0`, `[::]`) is reached on the loopback address of its family.
pub fn healthz_url(listen: &str) -> String {
    let host_port = match listen.parse::<SocketAddr>() {
        Ok(address) if address.ip().is_unspecified() => {
            let loopback = match address.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            SocketAddr::new(loopback, address.port()).to_string()
        }
        _ => listen.to_owned(),
    };
    format!("http://{host_port}/healthz")
}

/// Asks `url` once, waiting at most `timeout` for the whole answer: its body when it is a 200,
/// otherwise what went wrong.
pub async fn check(url: &str, timeout: Duration) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|err| failed(&err))?;
    let explain = |err: reqwest::Error| {
        if err.is_timeout() { format!("no answer within {} s", timeout.as_secs_f64()) } else { failed(&err) }
    };
    let response = client.get(url).send().await.map_err(explain)?;
    let status = response.status();
    let body = response.text().await.map_err(explain)?;
    if status == reqwest::StatusCode::OK {
        Ok(body)
    } else {
        Err(format!("it answered {}: {}", status.as_u16(), body.chars().take(300).collect::<String>()))
    }
}

#[cfg(test)]
mod tests {
    use super::healthz_url;

    #[test]
    fn the_url_follows_the_listen_address() {
        let check = |listen: &str, expected: &str| assert_eq!(healthz_url(listen), expected, "{listen}");
        check("0.0.0.0:8080", "http://127.0.0.1:8080/healthz");
        check("[::]:9000", "http://[::1]:9000/healthz");
        check("127.0.0.1:8080", "http://127.0.0.1:8080/healthz");
        check("10.1.2.3:80", "http://10.1.2.3:80/healthz");
        check("localhost:8080", "http://localhost:8080/healthz");
    }
}
