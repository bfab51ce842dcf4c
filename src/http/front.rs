//! `GET /`: the front door. What this server is, its version and health, links to the pages,
//! and the exact webhook URLs to paste into the provider's console; [`addresses`] gives the
//! same links to the start log, so that the page and the log never disagree.
//!
//! Rendered on the server as plain HTML (no script): it answers `curl` as well as a browser,
//! and works before anyone has signed in. Everything taken from the request (its Host header)
//! is escaped.

use std::fmt::Write as _;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::voice::Webhooks;
use crate::live::{LiveEngine, Role};

/// What an address is for, and the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Where it goes: a page, or the provider's console setting (with its method).
    pub what: &'static str,
    pub url: String,
    /// A webhook (pasted into the provider's console), rather than a page people open.
    pub webhook: bool,
}

/// The pages and the webhooks, under `base` (`https://host`, no trailing slash).
pub fn addresses(base: &str) -> Vec<Address> {
    let page = |what, path: &str| Address { what, url: format!("{base}{path}"), webhook: false };
    let hook = |what, path: &str| Address { what, url: format!("{base}{path}"), webhook: true };
    vec![
        page("Agent page", "/agent"),
        page("Supervisor page", "/supervisor"),
        page("Admin page", "/admin"),
        hook("Voice: a call comes in (HTTP POST)", crate::voice::paths::INCOMING),
        hook("Voice: primary handler fails (HTTP POST)", crate::voice::paths::FALLBACK),
        hook("Voice: call status changes (HTTP POST)", crate::voice::paths::STATUS),
        hook("Messaging: a message comes in (HTTP POST; WhatsApp senders too)", "/sms/incoming"),
    ]
}

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/")
            .route(web::get().to(front_door))
            .default_service(web::to(super::error::method_not_allowed)),
    );
}

async fn front_door(
    request: HttpRequest,
    engine: web::Data<LiveEngine>,
    webhooks: web::Data<Webhooks>,
) -> HttpResponse {
    let public_url = webhooks.public_url.as_str();
    let base = super::origin::base_url(&request, public_url);
    let health = match engine.role() {
        Role::Leader => "ok: this node serves",
        Role::Unsure => "unsure: this node could not renew its lease lately",
        Role::Standby { .. } => "standing by",
    };
    let body = render(&base, public_url.is_empty(), health, webhooks.validate_signatures);
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, super::pages::CONTENT_SECURITY_POLICY))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The page, its URLs under `base`.
fn render(base: &str, guessed: bool, health: &str, signatures_checked: bool) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut html = String::with_capacity(4096);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Switchboard {version}</title>\n<link rel=\"stylesheet\" href=\"/static/switchboard.css\">\n\
         </head>\n<body>\n<header class=\"bar\"><h1>Switchboard</h1><span class=\"who\">version {version}</span></header>\n\
         <main>\n<section class=\"card\" aria-labelledby=\"what\">\n<h2 id=\"what\">A self-hosted contact-center router</h2>\n\
         <p>Callers and texters walk the IVR flows, tasks are routed with TaskRouter's rules, and agents \
         take them on their page.</p>\n<p>Health: <strong id=\"health\">{}</strong> \
         (<a href=\"/healthz\">/healthz</a>, <a href=\"/readyz\">/readyz</a>)</p>\n</section>\n",
        escape(health)
    );
    let addresses = addresses(base);
    html.push_str("<section class=\"card\" aria-labelledby=\"pages\">\n<h2 id=\"pages\">Pages</h2>\n<ul>\n");
    for address in addresses.iter().filter(|address| !address.webhook) {
        let _ = writeln!(html, "<li><a href=\"{0}\">{1}</a></li>", escape(&address.url), address.what);
    }
    html.push_str(
        "<li><a href=\"/v1/Workspaces\">TaskRouter REST API</a> (the account SID and auth token as Basic \
         credentials)</li>\n</ul>\n</section>\n",
    );
    html.push_str(
        "<section class=\"card\" aria-labelledby=\"webhooks\">\n<h2 id=\"webhooks\">Webhooks for the provider's console</h2>\n\
         <table><thead><tr><th scope=\"col\">Setting</th><th scope=\"col\">URL</th></tr></thead><tbody>\n",
    );
    for address in addresses.iter().filter(|address| address.webhook) {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            address.what,
            escape(&address.url)
        );
    }
    html.push_str("</tbody></table>\n");
    if guessed {
        html.push_str(
            "<p class=\"note\">These URLs are taken from the address this page was asked for. Set \
             <code>voice.public_url</code> to the address the provider reaches (a proxy or tunnel hides it from \
             the server): webhook signatures are checked over it.</p>\n",
        );
    }
    if !signatures_checked {
        html.push_str(
            "<p class=\"error\" role=\"alert\"><code>twilio.validate_signatures</code> is false: webhooks are \
             not authenticated. Use this only for local experiments.</p>\n",
        );
    }
    html.push_str("</section>\n</main>\n</body>\n</html>\n");
    html
}

/// `text` safe in HTML text and in a double-quoted attribute.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_comes_from_the_request_is_escaped() {
        let check = |text: &str, expected: &str| assert_eq!(escape(text), expected, "{text}");
        check("https://sb.example.com", "https://sb.example.com");
        check(
            "http://x\"><script>alert(1)</script>",
            "http://x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;",
        );
        check("a&b'c", "a&amp;b&#39;c");
    }

    #[test]
    fn the_page_lists_every_address_under_the_base() {
        let page = render("http://evil\"host", true, "ok", false);
        assert!(page.contains("<code>http://evil&quot;host/voice/incoming</code>"), "{page}");
        assert!(page.contains("href=\"http://evil&quot;host/agent\""), "{page}");
        assert!(!page.contains("evil\"host"), "{page}");
        assert!(page.contains("voice.public_url") && page.contains("validate_signatures"), "{page}");
        let quiet = render("https://sb.example.com", false, "ok", true);
        assert!(!quiet.contains("voice.public_url") && !quiet.contains("validate_signatures"), "{quiet}");
    }
}
