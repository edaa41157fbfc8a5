//! The operator console in a real browser: headless Chromium, driven by playwright-core,
//! loads `/console` from a node with data and shows the numbers the node counted.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::support::{PERMIT_ALL, TWO_TENANTS, TestNode, eventually, policy_dir, repository_root};

const OPERATOR: &str = "operator-secret";

/// Chromium and playwright-core, or `None` (with a note) when they are not installed and the
/// browser tests are not required. `scripts/test.sh` installs both and requires them.
fn browser() -> Option<PathBuf> {
    let playwright = std::env::var_os("OMNIGRAPH_PLAYWRIGHT").map(PathBuf::from);
    let chromium = std::env::var("OMNIGRAPH_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let ready = playwright
        .as_ref()
        .is_some_and(|dir| dir.join("node_modules/playwright-core").is_dir())
        && std::path::Path::new(&chromium).exists();
    if ready {
        return playwright;
    }
    let required = std::env::var("OMNIGRAPH_TEST_BROWSER").as_deref() == Ok("require")
        || std::env::var("CI").as_deref() == Ok("true");
    assert!(
        !required,
        "the browser tests are required: run scripts/test.sh to install Chromium and playwright-core"
    );
    eprintln!("note: Chromium or playwright-core missing; browser test skipped");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_renders_in_a_real_browser_with_the_counted_numbers() {
    let Some(playwright) = browser() else { return };
    let files = TempDir::new().unwrap();
    let operators = files.path().join("operators.sha256");
    std::fs::write(&operators, omnigraph_cloud_http::sha256_hex(OPERATOR)).unwrap();
    let policies = policy_dir(&[("_default.cedar", PERMIT_ALL)]);
    let toml = format!(
        "auth.policy_dir = {:?}\n{TWO_TENANTS}[usage]\nflush_interval = \"1s\"\n\
         [control]\noperator_tokens_file = {:?}\n",
        policies.path().display().to_string(),
        operators.display().to_string()
    );
    let node = TestNode::start_with(&toml).await;
    let acme = node.client_with_token("acme-token");
    let globex = node.client_with_token("globex-token");
    acme.create_graph("people").await;
    for i in 0..5 {
        acme.insert_person("people", &format!("p{i}"), i)
            .await
            .expect(200);
    }
    globex.create_graph("orders").await;
    globex.insert_person("orders", "o", 1).await.expect(200);

    // The page's numbers come from the overview; wait until the writes are in a record.
    let operator = node.client_with_token(OPERATOR);
    let flushed = eventually(Duration::from_secs(10), || {
        let operator = operator.clone();
        async move {
            let overview = operator.get("/console/api/overview").await.json;
            overview["usage"]["tenants"]
                .as_array()
                .and_then(|tenants| tenants.iter().find(|t| t["tenant"] == "acme"))
                .is_some_and(|acme| acme["totals"]["requests"]["write"] == 5)
        }
    })
    .await;
    assert!(flushed, "usage records of the writes");
    node.client().get("/console/api/overview").await.expect(401);

    let artifacts = std::env::var_os("OMNIGRAPH_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| files.path().to_path_buf());
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("console.png");
    let mut command = std::process::Command::new("node");
    command
        .arg(repository_root().join("scripts/console_check.cjs"))
        .arg(&node.base)
        .arg(OPERATOR)
        .arg(&screenshot)
        .env("OMNIGRAPH_PLAYWRIGHT", &playwright);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("console screenshot: {}", screenshot.display());

    assert_eq!(
        shown["outside_requests"],
        serde_json::json!([]),
        "nothing from elsewhere"
    );
    let tenants = shown["tenants"].as_array().unwrap();
    let row = |tenant: &str| {
        tenants
            .iter()
            .find(|row| row[0] == tenant)
            .unwrap_or_else(|| panic!("{tenant} not shown: {shown}"))
            .clone()
    };
    assert_eq!(row("acme")[2], "people");
    assert_eq!(row("globex")[2], "orders");
    let warm: Vec<String> = shown["warm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| format!("{}/{}", row[0].as_str().unwrap(), row[1].as_str().unwrap()))
        .collect();
    assert!(warm.contains(&"acme/people".to_string()), "{warm:?}");
    // Requests counted: a create (manage) and 5 inserts for acme; the page shows the sum.
    let acme_usage = &shown["usage"]["acme"];
    assert_eq!(acme_usage["requests"], "6", "{shown}");
    assert_eq!(shown["usage"]["globex"]["requests"], "2", "{shown}");
    assert!(
        acme_usage["bars"].as_u64().unwrap() >= 1,
        "a bar per busy second"
    );
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);
}
