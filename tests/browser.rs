//! The HTML digest and the web view in a real browser: headless Chromium driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`, through fantoccini). The digest is built the real way —
//! the bundled sample run through the `cierre` binary (`run --once`), then `cierre digest
//! --format html` for the sample's fallback recipient (about 500 contracts) — and loaded at
//! 600 and 360 CSS pixels wide. At each width: nothing overflows horizontally, every row's
//! SECOP II link (`<a data-row="CONTRACT_ID" href=…>`) is visible inside the viewport, and the
//! page says it is in Spanish. Every problem found is reported at once, at the end.
//!
//! Chromium and chromedriver are required: without them the test fails, it never skips
//! (`.ci/run` installs them).
//!
//! Environment:
//! - `CIERRE_SCREENSHOTS=DIR`: write full-page screenshots `DIR/digest-600.png` and
//!   `DIR/digest-360.png` (what `scripts/screenshots` does), also when the checks fail.
//! - `CIERRE_BROWSER_HTML=FILE`: check FILE instead of the digest built from the sample, to
//!   debug the harness or try a template draft without running the pipeline.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// `.ci/run`'s install line.
const INSTALL: &str = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
                       --no-install-recommends chromium chromium-driver";
const RECIPIENT: &str = "contratacion.central@example.gov.co";
const AS_OF: &str = "2026-02-16";
/// Viewport widths checked, in CSS pixels: a narrow desktop mail pane, then a phone.
const WIDTHS: [u32; 2] = [600, 360];
/// Viewport height while checking (the screenshots use the page's whole height).
const HEIGHT: u32 = 800;
/// Full-page screenshots stop at this height.
const MAX_SCREENSHOT_HEIGHT: u32 = 20_000;
/// Sub-pixel slack when comparing layout boxes with the viewport.
const SLACK: f64 = 0.5;

#[tokio::test(flavor = "multi_thread")]
async fn html_digest_fits_600_and_360_px_and_shows_every_row_link() {
    for (what, path) in [("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)] {
        assert!(
            Path::new(path).is_file(),
            "{what} is missing ({path}): the browser test needs Debian's chromium and \
             chromium-driver. Install them with .ci/run's install line:\n  {INSTALL}\n\
             (with sudo when not root)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (html, source) = match std::env::var_os("CIERRE_BROWSER_HTML") {
        Some(file) => {
            let html = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("CIERRE_BROWSER_HTML={}: {e}", file.to_string_lossy()));
            (html, format!("{} (CIERRE_BROWSER_HTML)", file.to_string_lossy()))
        }
        None => (
            build_digest(dir.path()),
            format!("the HTML digest for {RECIPIENT} as of {AS_OF} on the bundled sample"),
        ),
    };
    let built = started.elapsed();
    let page = dir.path().join("digest.html");
    std::fs::write(&page, &html).unwrap();
    let url = url::Url::from_file_path(&page).unwrap();
    let screenshots = std::env::var_os("CIERRE_SCREENSHOTS").map(|d| {
        let d = PathBuf::from(d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("CIERRE_SCREENSHOTS={d:?}: {e}"));
        std::path::absolute(&d).unwrap()
    });

    let driver = Chromedriver::start(dir.path());
    let checking = Instant::now();
    let failures = tokio::time::timeout(
        Duration::from_secs(180),
        check_in_browser(&driver, dir.path(), url.as_str(), screenshots.as_deref()),
    )
    .await
    .unwrap_or_else(|_| panic!("the browser checks took over 180 s{}", driver.log_tail()));
    drop(driver);
    eprintln!(
        "browser test: page built in {:.1} s, checked at {WIDTHS:?} px in {:.1} s",
        built.as_secs_f64(),
        checking.elapsed().as_secs_f64()
    );
    if let Some(d) = &screenshots {
        for w in WIDTHS {
            eprintln!("screenshot: {}", d.join(format!("digest-{w}.png")).display());
        }
    }
    assert!(
        failures.is_empty(),
        "{source} in headless Chromium: {} problem(s)\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Loads the page at each width and returns every problem found. A harness failure (a
/// WebDriver error, a viewport that cannot be set) panics instead.
async fn check_in_browser(
    driver: &Chromedriver,
    dir: &Path,
    url: &str,
    screenshots: Option<&Path>,
) -> Vec<String> {
    let client = driver.connect(dir).await;
    let mut failures = Vec::new();
    for width in WIDTHS {
        set_viewport(&client, width, HEIGHT).await;
        client.goto(url).await.unwrap_or_else(|e| panic!("loading {url}: {e}"));
        let inner = js(&client, "return window.innerWidth").await;
        assert_eq!(
            inner.as_u64(),
            Some(u64::from(width)),
            "after loading the page, window.innerWidth is {inner}, not {width}"
        );
        if width == WIDTHS[0] {
            let lang = js(&client, "return document.documentElement.lang").await;
            if lang != json!("es") {
                failures.push(format!(
                    "document.documentElement.lang is {lang}, not \"es\" (<html lang=\"es\">)"
                ));
            }
        }
        failures.extend(overflow(&client, width).await);
        failures.extend(row_links(&client, width).await);
        if let Some(d) = screenshots {
            let file = d.join(format!("digest-{width}.png"));
            full_page_screenshot(&client, width, &file).await;
        }
    }
    client.close().await.unwrap_or_else(|e| panic!("closing the WebDriver session: {e}"));
    failures
}

/// Horizontal overflow: the document must be no wider than the viewport.
async fn overflow(client: &Client, width: u32) -> Option<String> {
    let found = js(client, OVERFLOW_JS).await;
    let scroll_width = found["scrollWidth"].as_f64().unwrap();
    if scroll_width <= f64::from(width) {
        return None;
    }
    let mut msg = format!(
        "at {width} px the page overflows horizontally: document.documentElement.scrollWidth \
         is {scroll_width} px > window.innerWidth {width} px; {} element(s) reach past the \
         viewport.",
        found["count"]
    );
    for (list, title) in [
        ("widest", "The widest"),
        ("text", "Text drawn past the edge (in the element shown), rightmost first"),
    ] {
        let found = found[list].as_array().unwrap();
        msg.push_str(&format!("\n{title}:{}", if found.is_empty() { " none" } else { "" }));
        for e in found {
            msg.push_str(&format!(
                "\n  {} {}x{} px at x {}..{}: \"{}\"",
                e["tag"].as_str().unwrap(),
                e["width"],
                e["height"],
                e["left"],
                e["right"],
                e["text"].as_str().unwrap()
            ));
        }
    }
    Some(msg)
}

/// What reaches past the viewport: the widest elements (the boxes that grew), and the runs of
/// text drawn past its edges (what usually makes them grow: a long word, a line that does not
/// wrap), rightmost first. Each is described by its element's opening tag, with the
/// attributes that size it, and the start of its text.
const OVERFLOW_JS: &str = r#"
const vw = window.innerWidth;
const open = (el) => {
  let s = '<' + el.tagName.toLowerCase();
  for (const a of ['id', 'class', 'data-row', 'width', 'style']) {
    const v = el.getAttribute(a);
    if (v !== null) s += ' ' + a + '="' + (v.length > 80 ? v.slice(0, 77) + '...' : v) + '"';
  }
  return s + '>';
};
const found = [];
for (const el of document.body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  const left = r.left + window.scrollX, right = r.right + window.scrollX;
  if (right > vw + 0.5 || left < -0.5) found.push({ el, r, left, right });
}
const snippet = (t) => {
  t = (t || '').replace(/\s+/g, ' ').trim();
  return t.length > 60 ? t.slice(0, 57) + '...' : t;
};
const describe = (f) => {
  return {
    tag: open(f.el),
    width: Math.round(f.r.width), height: Math.round(f.r.height),
    left: Math.round(f.left), right: Math.round(f.right),
    text: snippet(f.text === undefined ? f.el.textContent : f.text),
  };
};
// One element per box (a table, its tbody, tr and td often share one): the outermost.
const once = (key) => {
  const seen = new Set();
  return (d) => !seen.has(key(d)) && seen.add(key(d));
};
const widest = found
  .sort((a, b) => b.r.width - a.r.width)
  .map(describe)
  .filter(once((d) => [d.left, d.right, d.height].join()))
  .slice(0, 6);
const text = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const range = document.createRange();
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  if (!n.data.trim()) continue;
  range.selectNodeContents(n);
  for (const r of range.getClientRects()) {
    const left = r.left + window.scrollX, right = r.right + window.scrollX;
    if (right > vw + 0.5 || left < -0.5) text.push({ el: n.parentElement, r, left, right, text: n.data });
  }
}
// One run of text per element and column.
const drawn = text
  .sort((a, b) => b.right - a.right)
  .map(describe)
  .filter(once((d) => d.tag + d.left))
  .slice(0, 6);
return {
  scrollWidth: document.documentElement.scrollWidth,
  count: found.length,
  widest,
  text: drawn,
};
"#;

/// Every row's link: present, laid out, not hidden, inside the viewport.
async fn row_links(client: &Client, width: u32) -> Option<String> {
    let links = js(client, LINKS_JS).await;
    let links = links.as_array().unwrap();
    if links.is_empty() {
        return Some(format!(
            "at {width} px there is no row link: no <a data-row=\"CONTRACT_ID\" href=\"…\"> in \
             the page (every row of the digest carries its SECOP II link that way)"
        ));
    }
    let vw = f64::from(width);
    let mut bad = Vec::new();
    for l in links {
        let mut why = Vec::new();
        if l["href"].as_str().unwrap().is_empty() {
            why.push("no href".to_string());
        }
        if l["offsetWidth"].as_f64().unwrap() <= 0.0 || l["offsetHeight"].as_f64().unwrap() <= 0.0 {
            why.push(format!("offset size {}x{}", l["offsetWidth"], l["offsetHeight"]));
        }
        let (left, right) = (l["left"].as_f64().unwrap(), l["right"].as_f64().unwrap());
        if left < -SLACK || right > vw + SLACK {
            why.push(format!("spans x {left:.1}..{right:.1}, outside 0..{width}"));
        }
        if l["visibility"] == "hidden" {
            why.push("visibility: hidden".to_string());
        }
        if l["display"] == "none" {
            why.push("display: none".to_string());
        }
        if !why.is_empty() {
            bad.push(format!(
                "  data-row={} \"{}\": {}",
                l["row"],
                l["text"].as_str().unwrap(),
                why.join(", ")
            ));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let total = bad.len();
    bad.truncate(10);
    Some(format!(
        "at {width} px {total} of {} row link(s) are not fully visible{}:\n{}",
        links.len(),
        if total > 10 { " (the first 10)" } else { "" },
        bad.join("\n")
    ))
}

const LINKS_JS: &str = r#"
return Array.from(document.querySelectorAll('a[data-row]')).map((a) => {
  const r = a.getBoundingClientRect();
  const s = getComputedStyle(a);
  const text = (a.textContent || '').replace(/\s+/g, ' ').trim();
  return {
    row: a.getAttribute('data-row'),
    href: a.getAttribute('href') || '',
    text: text.length > 40 ? text.slice(0, 37) + '...' : text,
    offsetWidth: a.offsetWidth, offsetHeight: a.offsetHeight,
    left: r.left + window.scrollX, right: r.right + window.scrollX,
    visibility: s.visibility, display: s.display,
  };
});
"#;

/// Resizes the window so that the viewport (window.innerWidth x innerHeight) is `width` x
/// `height`: the window is set, then corrected by the difference between its outer and inner
/// size once the page has seen the resize. The width must come out exact; the height may be
/// capped by the browser. Returns the inner height.
async fn set_viewport(client: &Client, width: u32, height: u32) -> u32 {
    let want = [i64::from(width), i64::from(height)];
    let mut outer = want;
    let mut inner = [0, 0];
    for _ in 0..3 {
        client
            .set_window_rect(0, 0, outer[0] as u32, outer[1] as u32)
            .await
            .unwrap_or_else(|e| panic!("setting the window to {}x{}: {e}", outer[0], outer[1]));
        // A resize reaches the page asynchronously: wait until the page reports the window
        // size just set (or what the browser capped it to) before reading the viewport.
        let (_, _, set_w, set_h) = client.get_window_rect().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let seen = loop {
            let seen = js(
                client,
                "return [window.innerWidth, window.innerHeight, window.outerWidth, window.outerHeight]",
            )
            .await;
            let seen: Vec<i64> =
                seen.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
            // Chromium reports an outerWidth of at least 500 px: a narrower window shows as
            // its innerWidth instead.
            let (set_w, set_h) = (set_w as i64, set_h as i64);
            if seen[3] == set_h && (seen[2] == set_w || seen[0] == set_w)
                || Instant::now() > deadline
            {
                break seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        inner = [seen[0], seen[1]];
        if inner == want {
            return height;
        }
        outer = [outer[0] + want[0] - inner[0], outer[1] + want[1] - inner[1]];
    }
    assert_eq!(
        inner[0], want[0],
        "could not make window.innerWidth {width} px: it stays at {} px (window {}x{})",
        inner[0], outer[0], outer[1]
    );
    inner[1] as u32
}

/// A screenshot of the whole page: the viewport as tall as the document (up to
/// MAX_SCREENSHOT_HEIGHT), then back to the checking height.
async fn full_page_screenshot(client: &Client, width: u32, file: &Path) {
    let doc = js(client, "return document.documentElement.scrollHeight").await;
    let want = (doc.as_u64().unwrap() as u32).clamp(1, MAX_SCREENSHOT_HEIGHT);
    let got = set_viewport(client, width, want).await;
    if got < want {
        eprintln!(
            "screenshot {}: the browser capped the viewport at {got} of {want} px",
            file.display()
        );
    }
    let png = client.screenshot().await.unwrap_or_else(|e| panic!("screenshot at {width} px: {e}"));
    std::fs::write(file, png).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
    set_viewport(client, width, HEIGHT).await;
}

async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("running {script:?}: {e}"))
}

/// The sample synced and evaluated in `dir` by the real binary, then the fallback recipient's
/// digest rendered as HTML.
fn build_digest(dir: &Path) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("examples"), &dir.join("examples"));
    std::fs::copy(repo.join("daemon.toml"), dir.join("daemon.toml")).unwrap();
    let config = dir.join("daemon.toml");
    let store = format!("sqlite://{}", dir.join("cierre.db").display());
    let cierre = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cierre"));
        // Only this test's settings: none from the environment it runs in.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CIERRE") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(dir)
            .env("CIERRE__STORE__URL", &store)
            .env("CIERRE__EMAIL__OUTBOX_DIR", dir.join("outbox"))
            .env("CIERRE__EMAIL__TEMPLATES_DIR", repo.join("templates"))
            .env("CIERRE_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cierre {}: {}\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    cierre(&["run", "--once", "--as-of", AS_OF]);
    let html = cierre(&["digest", "--to", RECIPIENT, "--as-of", AS_OF, "--format", "html"]);
    assert!(html.contains("<html"), "cierre digest --format html printed no HTML page:\n{html}");
    html
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// chromedriver on a free loopback port, in a process group of its own: dropping this (also
/// while a panic unwinds) kills the group, so the browsers it started go with it.
struct Chromedriver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Chromedriver {
    fn start(dir: &Path) -> Chromedriver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.join("chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            // Chromium's scratch folders too, so that a killed browser leaves none behind.
            .env("TMPDIR", dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        let mut driver = Chromedriver { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = driver.child.try_wait().unwrap() {
                panic!("chromedriver exited at start-up ({status}){}", driver.log_tail());
            }
            if driver.ready() {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer /status on 127.0.0.1:{port} within 30 s{}",
                driver.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET /status answers `"ready": true` (chromedriver keeps the connection open after
    /// its answer, so the answer is read until it says so).
    fn ready(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let request = format!(
            "GET /status HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if s.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let (mut answer, mut chunk) = (Vec::new(), [0; 4096]);
        while let Ok(n @ 1..) = s.read(&mut chunk) {
            answer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&answer);
            if text.starts_with("HTTP/1.1 200") && text.contains("\"ready\":true") {
                return true;
            }
        }
        false
    }

    async fn connect(&self, dir: &Path) -> Client {
        let profile = dir.join("chromium-profile");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        // Plain HTTP to the driver on loopback: no TLS. fantoccini without a TLS feature takes
        // a hyper-util connector (the dev-dependency hyper-util with client-legacy, http1 and
        // tokio; with fantoccini's native-tls feature this would be ClientBuilder::native()).
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| {
                panic!("starting a headless {CHROMIUM} session: {e}{}", self.log_tail())
            })
    }

    /// The end of chromedriver's output, to append to a failure message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() { String::new() } else { format!("\nchromedriver said:\n{tail}") }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started. Best effort:
        // some may be gone already.
        Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status()
            .ok();
        if self.child.kill().is_ok() {
            self.child.wait().ok();
        }
    }
}

/// SENA's three services contracts that ended in January 2026 (closable, overdue by the
/// slots below) and an ICBF one.
const WEB_CONTRACTS: &str = r#"{"id_contrato":"CO1.PCCNTR.901","nit_entidad":"899999034","nombre_entidad":"SERVICIO NACIONAL DE APRENDIZAJE SENA","estado_contrato":"terminado","tipo_de_contrato":"Prestación de servicios","fecha_de_fin_del_contrato":"2026-01-30T00:00:00.000","liquidaci_n":"No"}
{"id_contrato":"CO1.PCCNTR.902","nit_entidad":"899999034","nombre_entidad":"SERVICIO NACIONAL DE APRENDIZAJE SENA","estado_contrato":"terminado","tipo_de_contrato":"Prestación de servicios","fecha_de_fin_del_contrato":"2026-01-16T00:00:00.000","liquidaci_n":"No"}
{"id_contrato":"CO1.PCCNTR.903","nit_entidad":"899999034","nombre_entidad":"SERVICIO NACIONAL DE APRENDIZAJE SENA","estado_contrato":"terminado","tipo_de_contrato":"Prestación de servicios","fecha_de_fin_del_contrato":"2026-01-23T00:00:00.000","liquidaci_n":"No"}
{"id_contrato":"CO1.PCCNTR.904","nit_entidad":"899999239","estado_contrato":"terminado","tipo_de_contrato":"Prestación de servicios","fecha_de_fin_del_contrato":"2026-01-16T00:00:00.000","liquidaci_n":"No"}
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when dropped (also while a panic unwinds).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if self.0.kill().is_ok() {
            self.0.wait().ok();
        }
    }
}

/// An office head's round trip, all real: a digest arrives at an SMTP server on loopback
/// (aiosmtpd), its link opens "Mis hallazgos" in headless Chromium, the head puts a finding
/// "en trámite" through the form, the finding's page shows it in its history, and the next
/// digest leaves it out and says so. At 1280 and 390 px the pages do not overflow. An
/// administrator then signs in to the console with the keyboard and creates a silence.
/// `CIERRE_SCREENSHOTS=DIR` also writes `mis-hallazgos-{1280,390}.png` and
/// `hallazgo-{1280,390}.png`.
#[tokio::test(flavor = "multi_thread")]
async fn an_office_head_answers_a_finding_from_the_link_of_a_digest() {
    for (what, path) in [("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)] {
        assert!(Path::new(path).is_file(), "{what} is missing ({path}); install: {INSTALL}");
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (smtp_port, http_port) = (free_port(), free_port());
    let mail = dir.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let mut smtp = Killed(
        Command::new("python3")
            .arg(repo.join("tests/support/smtp_server.py"))
            .args(["--port", &smtp_port.to_string(), "--out", mail.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd"),
    );
    let mut ready = [0u8; 5];
    smtp.0.stdout.as_mut().unwrap().read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready", "the SMTP server did not start");
    std::fs::write(dir.path().join("contracts.jsonl"), WEB_CONTRACTS).unwrap();
    let base = format!("http://127.0.0.1:{http_port}");
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
url = "sqlite://{db}"
[source]
kind = "file"
contracts_path = "{contracts}"
[[offices]]
id = "sena"
name = "Contratación SENA"
head = {{ name = "Jefa SENA", email = "jefa@sena.example" }}
chain = [
  {{ role = "director", name = "Director SENA", email = "director@sena.example" }},
  {{ role = "control_interno", name = "Control Interno SENA", email = "ci@sena.example" }},
]
[[offices]]
id = "icbf"
name = "Contratación ICBF"
head = {{ name = "Jefe ICBF", email = "jefe@icbf.example" }}
chain = [
  {{ role = "director", name = "Director ICBF", email = "director@icbf.example" }},
  {{ role = "control_interno", name = "Control Interno ICBF", email = "ci@icbf.example" }},
]
[[routes]]
office = "sena"
match = {{ nit_entidad = "899999034" }}
[[routes]]
office = "icbf"
match = {{ nit_entidad = "899999239" }}
[email]
from = "cierre <cierre@example.gov.co>"
templates_dir = "{templates}"
[email.smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
[http]
listen = "127.0.0.1:{http_port}"
public_url = "{base}/"
link_secret = "browser-test-secret-0123456789abcdef"
token = "browser-admin-token-0123456789"
[schedule]
sync = "0 0 3 1 1 *"
notify = "0 0 3 1 1 *"
deliver = "0 0 3 1 1 *"
resync = "0 0 3 1 1 *"
purge = "0 0 3 1 1 *"
"#,
            db = dir.path().join("cierre.db").display(),
            contracts = dir.path().join("contracts.jsonl").display(),
            templates = repo.join("templates").display(),
        ),
    )
    .unwrap();
    let cierre = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cierre"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CIERRE") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--config").arg(&config).args(args).env("CIERRE_LOG", "warn");
        cmd
    };
    let run = |args: &[&str]| {
        let out = cierre(args).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "cierre {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // Two business days of the last ten days (the daemon serving the links runs on the real
    // clock, and a link is valid from its digest's day): every finding overdue by then, so
    // in both digests (daily).
    let business: Vec<String> = (1..=10)
        .rev()
        .map(|back| (chrono::Utc::now().date_naive() - chrono::Days::new(back)).to_string())
        .filter(|day| {
            let prev =
                (day.parse::<chrono::NaiveDate>().unwrap() - chrono::Days::new(1)).to_string();
            let out = cierre(&["calendar", "business-days", &prev, day]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim() == "1"
        })
        .collect();
    let (first, second) =
        (business[business.len() - 2].clone(), business[business.len() - 1].clone());
    let slot = |day: &str| {
        run(&["evaluate", "--as-of", day]);
        run(&["notify", "--as-of", day]);
        run(&["deliver"]);
    };
    let digest_text = |day: &str| -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&mail)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|p| {
                let raw = std::fs::read(p).unwrap();
                let m = mail_parser::MessageParser::default().parse(&raw[..])?;
                let to = m.to()?.first()?.address()?.to_string();
                let id = m.message_id()?.to_string();
                (to == "jefa@sena.example" && id.contains(day))
                    .then(|| m.body_text(0).unwrap_or_default().into_owned())
            })
            .next_back()
            .unwrap_or_else(|| panic!("no digest for jefa@sena.example on {day}"))
    };
    run(&["sync"]);
    slot(&first);
    let text = digest_text(&first);
    let line = text.lines().find(|l| l.contains("/mis-hallazgos?t=")).expect("a personal link");
    let link = line[line.find("http").unwrap()..].trim().to_string();
    assert!(text.contains("CO1.PCCNTR.902"), "{text}");

    // The daemon serves the web view.
    let daemon = Killed(
        cierre(&["run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
        assert!(Instant::now() < deadline, "the daemon did not listen on {http_port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let screenshots = std::env::var_os("CIERRE_SCREENSHOTS").map(PathBuf::from);
    let driver = Chromedriver::start(dir.path());
    let checks = async {
        let client = driver.connect(dir.path()).await;
        let mut failures = Vec::new();
        set_viewport(&client, 1280, HEIGHT).await;
        client.goto(&link).await.unwrap();
        let url = client.current_url().await.unwrap();
        assert_eq!(url.as_str(), format!("{base}/mis-hallazgos"), "the token leaves the address");
        let rows = js(
            &client,
            "return [...document.querySelectorAll('tr[data-finding] a')].map(a => a.textContent)",
        )
        .await;
        let rows: Vec<&str> =
            rows.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(rows.len(), 3, "SENA's three findings, not ICBF's: {rows:?}");
        assert!(!rows.contains(&"CO1.PCCNTR.904"), "{rows:?}");
        for width in [1280, 390] {
            set_viewport(&client, width, HEIGHT).await;
            failures.extend(overflow(&client, width).await);
            if let Some(d) = &screenshots {
                std::fs::create_dir_all(d).unwrap();
                full_page_screenshot(&client, width, &d.join(format!("mis-hallazgos-{width}.png")))
                    .await;
            }
        }
        set_viewport(&client, 1280, HEIGHT).await;
        // The finding's page, then the "en trámite" form: a date (set as the date picker
        // would), a reason, submit.
        client
            .find(fantoccini::Locator::LinkText("CO1.PCCNTR.902"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        arrive(&client, |u| u.path().starts_with("/mis-hallazgos/")).await;
        let until = (chrono::Utc::now().date_naive() + chrono::Days::new(20)).to_string();
        js(&client, &format!("document.getElementById('until').value = '{until}'; return true"))
            .await;
        client
            .find(fantoccini::Locator::Id("reason-t"))
            .await
            .unwrap()
            .send_keys("Acta de cierre en firma del ordenador del gasto")
            .await
            .unwrap();
        client
            .find(fantoccini::Locator::Css("form:first-of-type button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        arrive(&client, |u| u.query() == Some("hecho=1")).await;
        let body =
            client.find(fantoccini::Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(body.contains("Su respuesta quedó registrada."), "{body}");
        assert!(body.contains(&format!("En trámite hasta el {until}: Acta de cierre")), "{body}");
        for width in [1280, 390] {
            set_viewport(&client, width, HEIGHT).await;
            failures.extend(overflow(&client, width).await);
            if let Some(d) = &screenshots {
                full_page_screenshot(&client, width, &d.join(format!("hallazgo-{width}.png")))
                    .await;
            }
        }
        failures.extend(admin_console(&client, &base, screenshots.as_deref()).await);
        client.close().await.unwrap();
        failures
    };
    let failures = tokio::time::timeout(Duration::from_secs(180), checks)
        .await
        .unwrap_or_else(|_| panic!("the browser checks took over 180 s{}", driver.log_tail()));
    drop(driver);
    drop(daemon);

    // The next digest leaves the answered finding out and counts it.
    slot(&second);
    let next = digest_text(&second);
    assert!(!next.contains("CO1.PCCNTR.902"), "{next}");
    assert!(
        next.contains("CO1.PCCNTR.901") && next.contains("No se muestran: 1 en trámite."),
        "{next}"
    );
    drop(smtp);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The admin console in the browser: the sign-in form typed and sent with the keyboard, the
/// overview, a silence created from its form (for ICBF, so SENA's next digest is not
/// touched), the outbox and the runs; at 1280 and 390 px nothing overflows.
/// `CIERRE_SCREENSHOTS=DIR` writes `admin-{entrar,resumen,silencios,envios,ejecuciones,
/// configuracion,vista}-{1280,390}.png`.
async fn admin_console(client: &Client, base: &str, screenshots: Option<&Path>) -> Vec<String> {
    use fantoccini::Locator;
    let mut failures = Vec::new();
    set_viewport(client, 1280, HEIGHT).await;
    let shoot = async |name: &str, failures: &mut Vec<String>| {
        for width in [1280, 390] {
            set_viewport(client, width, HEIGHT).await;
            failures.extend(overflow(client, width).await);
            if let Some(d) = screenshots {
                full_page_screenshot(client, width, &d.join(format!("admin-{name}-{width}.png")))
                    .await;
            }
        }
        set_viewport(client, 1280, HEIGHT).await;
    };
    client.goto(&format!("{base}/admin")).await.unwrap();
    shoot("entrar", &mut failures).await;
    client
        .find(Locator::Id("nombre"))
        .await
        .unwrap()
        .send_keys("admin@entidad.gov.co")
        .await
        .unwrap();
    let token = client.find(Locator::Id("token")).await.unwrap();
    token.send_keys("browser-admin-token-0123456789").await.unwrap();
    // Enter submits the form, as a keyboard user would.
    token.send_keys("\u{E007}").await.unwrap();
    arrive(client, |u| u.path() == "/admin").await;
    let main = client.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(main.contains("Resumen") && main.contains("Tareas"), "{main}");
    shoot("resumen", &mut failures).await;

    client.find(Locator::LinkText("Silencios")).await.unwrap().click().await.unwrap();
    arrive(client, |u| u.path() == "/admin/silencios").await;
    client.find(Locator::Id("office")).await.unwrap().send_keys("icbf").await.unwrap();
    let ends = (chrono::Utc::now().date_naive() + chrono::Days::new(14)).to_string();
    js(client, &format!("document.getElementById('ends_on').value = '{ends}'; return true")).await;
    // The author is who signed in.
    let author = client.find(Locator::Id("author")).await.unwrap();
    assert_eq!(author.prop("value").await.unwrap().as_deref(), Some("admin@entidad.gov.co"));
    client
        .find(Locator::Id("comment"))
        .await
        .unwrap()
        .send_keys("Auditoría de la Contraloría")
        .await
        .unwrap();
    client
        .find(Locator::XPath("//button[text()='Crear silencio']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(client, |u| u.query().is_some_and(|q| q.starts_with("creado="))).await;
    let main = client.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(main.contains("creado."), "{main}");
    assert!(
        main.contains("oficina icbf") && main.contains("Auditoría de la Contraloría"),
        "{main}"
    );
    shoot("silencios", &mut failures).await;

    client.find(Locator::LinkText("Envíos")).await.unwrap().click().await.unwrap();
    arrive(client, |u| u.path() == "/admin/envios").await;
    let main = client.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(main.contains("jefa@sena.example") && main.contains("enviado"), "{main}");
    shoot("envios", &mut failures).await;
    client.find(Locator::LinkText("Ejecuciones")).await.unwrap().click().await.unwrap();
    arrive(client, |u| u.path() == "/admin/ejecuciones").await;
    shoot("ejecuciones", &mut failures).await;
    client.find(Locator::LinkText("Configuración")).await.unwrap().click().await.unwrap();
    arrive(client, |u| u.path() == "/admin/configuracion").await;
    let main = client.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(main.contains("El archivo es válido"), "{main}");
    shoot("configuracion", &mut failures).await;
    client.find(Locator::LinkText("Vista previa")).await.unwrap().click().await.unwrap();
    arrive(client, |u| u.path() == "/admin/resumen").await;
    client.find(Locator::Id("buscar")).await.unwrap().send_keys("sena\u{E007}").await.unwrap();
    arrive(client, |u| u.query().is_some_and(|q| q.contains("buscar=sena"))).await;
    shoot("vista", &mut failures).await;
    failures
}

/// Waits until the browser has loaded a page whose address satisfies `at` (after a click or
/// a form sent): the navigation is the browser's, so its end is polled for, up to 10 s.
async fn arrive(client: &Client, at: impl Fn(&url::Url) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = client.current_url().await.unwrap();
        if at(&url) && js(client, "return document.readyState").await == "complete" {
            return;
        }
        assert!(Instant::now() < deadline, "the browser stayed at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
