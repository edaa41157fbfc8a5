//! The benchmark's client side: creating and loading graphs, one query over HTTP or on the
//! engine, and the figures it prints.

use super::*;

pub(crate) async fn create_graph(http: &reqwest::Client, base: &str, graph: &str) {
    let response = http
        .post(format!("{base}/graphs"))
        .json(&json!({"graph_id": graph, "schema_source": SCHEMA}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

pub(crate) async fn load_people(http: &reqwest::Client, base: &str, graph: &str, count: usize) {
    let mut data = String::new();
    for i in 0..count {
        data.push_str(&format!(
            "{{\"type\":\"Person\",\"data\":{{\"name\":\"p{i}\",\"age\":{}}}}}\n",
            (i * 31) % 90
        ));
    }
    for i in 0..count.saturating_sub(1) {
        data.push_str(&format!(
            "{{\"edge\":\"Mentors\",\"from\":\"p{i}\",\"to\":\"p{}\"}}\n",
            i + 1
        ));
    }
    let response = http
        .post(format!("{base}/graphs/{graph}/load"))
        .json(&json!({"data": data, "mode": "overwrite"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

pub(crate) async fn query_engine(
    engine: &Omnigraph,
    params: &[omnigraph_compiler::query::ast::Param],
    name: &str,
) {
    let params = json_params_to_param_map(
        Some(&json!({"name": name})),
        params,
        JsonParamMode::Standard,
    )
    .unwrap();
    let result = engine
        .query(ReadTarget::branch("main"), QUERIES, "get_person", &params)
        .await
        .unwrap();
    assert_eq!(result.num_rows(), 1);
}

pub(crate) async fn query_http(http: &reqwest::Client, base: &str, graph: &str, name: &str) {
    let response = http
        .post(format!("{base}/graphs/{graph}/query"))
        .json(&json!({"query": QUERIES, "name": "get_person", "params": {"name": name}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["row_count"], 1);
}

pub(crate) fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

pub(crate) fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

pub(crate) fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        return "-".into();
    }
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}
