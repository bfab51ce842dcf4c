//! The agent, supervisor and admin pages: plain HTML, CSS and JavaScript from `static/`, compiled into the
//! binary (no build step, nothing to install next to it).
//!
//! Every page is served with a Content-Security-Policy that allows scripts and styles from this
//! server only: even if some caller-supplied text reached the page as HTML, no inline script or
//! event handler in it would run. (`X-Content-Type-Options: nosniff` is on every answer of the
//! server: `http::protective_headers`.)

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const AGENT_HTML: &str = include_str!("../../static/agent.html");
const AGENT_JS: &str = include_str!("../../static/agent.js");
const ADMIN_HTML: &str = include_str!("../../static/admin.html");
const ADMIN_JS: &str = include_str!("../../static/admin.js");
const SUPERVISOR_HTML: &str = include_str!("../../static/supervisor.html");
const SUPERVISOR_JS: &str = include_str!("../../static/supervisor.js");
const PAGE_JS: &str = include_str!("../../static/page.js");
const STYLE_CSS: &str = include_str!("../../static/switchboard.css");
/// Viz.js (Graphviz in WebAssembly) for the admin page's flow diagrams: `static/vendor/`.
const VIZ_JS: &str = include_str!("../../static/vendor/viz-global.js");
/// uPlot (small time-series charts on canvas) for the admin dashboard's charts: `static/vendor/`.
const UPLOT_JS: &str = include_str!("../../static/vendor/uplot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../static/vendor/uplot.min.css");
const CHARTS_JS: &str = include_str!("../../static/charts.js");

pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; media-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
/// The admin page's: the same, and WebAssembly compiled from this server's scripts (Viz.js
/// draws the IVR flows); `'wasm-unsafe-eval'` allows no JavaScript `eval`.
const ADMIN_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; media-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub(super) fn routes(config: &mut web::ServiceConfig) {
    let asset = |body: &'static str, content_type: &'static str| {
        web::get().to(move || async move { page(body, content_type, CONTENT_SECURITY_POLICY) })
    };
    config
        .route("/agent", asset(AGENT_HTML, "text/html; charset=utf-8"))
        .route("/static/page.js", asset(PAGE_JS, "text/javascript; charset=utf-8"))
        .route("/static/agent.js", asset(AGENT_JS, "text/javascript; charset=utf-8"))
        .route(
            "/admin",
            web::get()
                .to(|| async { page(ADMIN_HTML, "text/html; charset=utf-8", ADMIN_CONTENT_SECURITY_POLICY) }),
        )
        .route("/static/vendor/viz-global.js", asset(VIZ_JS, "text/javascript; charset=utf-8"))
        .route("/static/admin.js", asset(ADMIN_JS, "text/javascript; charset=utf-8"))
        .route("/static/charts.js", asset(CHARTS_JS, "text/javascript; charset=utf-8"))
        .route("/static/vendor/uplot.iife.min.js", asset(UPLOT_JS, "text/javascript; charset=utf-8"))
        .route("/static/vendor/uplot.min.css", asset(UPLOT_CSS, "text/css; charset=utf-8"))
        .route("/supervisor", asset(SUPERVISOR_HTML, "text/html; charset=utf-8"))
        .route("/static/supervisor.js", asset(SUPERVISOR_JS, "text/javascript; charset=utf-8"))
        .route("/static/switchboard.css", asset(STYLE_CSS, "text/css; charset=utf-8"));
}

fn page(body: &'static str, content_type: &'static str, policy: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, policy))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // The pages change with the binary; a browser checks again rather than run stale code.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}
