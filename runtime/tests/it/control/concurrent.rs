//! Several control-plane processes on one root (docs/control-plane.md#the-api).

use serde_json::json;

use super::{OPERATOR, Plane, status_within};
use crate::support::TestNode;

/// Two control-plane processes on one root, changing tenants at the same time: every change
/// of each is in the records and in the bundle the data plane serves (a record or a bundle is
/// replaced only if it is still the one its writer read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_plane_processes_lose_no_change_of_either() {
    let (plane, first) = Plane::start().await;
    let second = TestNode::start_on(plane.root.path(), &plane.files.control_toml).await;
    let operators = [
        first.client_with_token(OPERATOR),
        second.client_with_token(OPERATOR),
    ];
    operators[0]
        .post("/control/v1/tenants", json!({"tenant": "shared"}))
        .await
        .expect(201);
    // Each process creates tenants of its own and issues tokens of one shared tenant, all at
    // once.
    let mut work = Vec::new();
    for (side, operator) in operators.iter().enumerate() {
        for n in 0..6 {
            let operator = operator.clone();
            work.push(tokio::spawn(async move {
                operator
                    .post(
                        "/control/v1/tenants",
                        json!({"tenant": format!("t{side}-{n}")}),
                    )
                    .await
                    .expect(201);
                let issued = operator
                    .post(
                        "/control/v1/tenants/shared/tokens",
                        json!({"actor": format!("a{side}-{n}")}),
                    )
                    .await
                    .expect(201);
                issued["token"].as_str().unwrap().to_string()
            }));
        }
    }
    let mut tokens = Vec::new();
    for task in work {
        tokens.push(task.await.unwrap());
    }
    // Both processes read the same directory: 13 tenants, 12 tokens on the shared one.
    for operator in &operators {
        let listed = operator.get("/control/v1/tenants").await.expect(200);
        assert_eq!(listed["tenants"].as_array().unwrap().len(), 13, "{listed}");
        let shared = operator.get("/control/v1/tenants/shared").await.expect(200);
        assert_eq!(shared["tokens"].as_array().unwrap().len(), 12, "{shared}");
    }
    // The bundle in force holds every token: each works on the data node.
    for token in &tokens {
        let client = plane.data.client_with_token(token);
        assert!(
            status_within(&client, "/graphs", 200).await,
            "a token issued concurrently is missing from the bundle"
        );
    }
}
