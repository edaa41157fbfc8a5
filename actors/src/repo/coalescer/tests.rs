//! The coalescer's planning, batching and split-versus-share decisions, without an engine.

use omnigraph::error::OmniError;
use omnigraph::loader::LoadMode;
use omnigraph_cloud_config::WriteConfig;
use omnigraph_compiler::Literal;
use omnigraph_compiler::build_catalog;
use omnigraph_compiler::catalog::Catalog;
use omnigraph_compiler::query::parser::parse_query;
use omnigraph_compiler::schema::parser::parse_schema;

use super::plan::*;
use super::publish::*;
use super::queue::*;
use super::rewrite::*;
use crate::metrics::CoalescerMetrics;
use crate::repo::messages::WriteOp;
use crate::{ErrorKind, RepoError};

/// Finding 9: only invalid-input and conflict failures were split; any other failure of a
/// batch went to every caller, mostly as a 500. Now only failures that are every member's
/// own answer alike are shared; everything else is split down to each write.
#[test]
fn only_batch_wide_failures_are_shared() {
    let graph = omnigraph_cloud_config::GraphId::new("g").unwrap();
    let shared = [
        RepoError::BranchNotFound {
            branch: "b".into(),
            hint: "",
        },
        RepoError::NotWriter {
            graph,
            holder: "n".into(),
            epoch: 1,
            expires_in_ms: 5,
            address: Some("10.0.0.1:8080".into()),
        },
        RepoError::Overloaded {
            message: "full".into(),
        },
        RepoError::Unavailable {
            message: "store down".into(),
        },
    ];
    for err in &shared {
        let copies = batch_wide_copies(err, 3).expect("shared");
        assert_eq!(copies.len(), 3);
        assert!(copies.iter().all(|copy| copy.kind() == err.kind()
            || (err.kind() == ErrorKind::Unavailable && copy.kind() == ErrorKind::OutcomeUnknown)));
    }
    let split = [
        RepoError::Internal {
            message: "bug".into(),
        },
        RepoError::Engine(OmniError::Lance("Corrupt file".into())),
        RepoError::Engine(OmniError::manifest_not_found("row")),
        RepoError::Invalid {
            message: "bad".into(),
        },
        RepoError::Conflict {
            message: "race".into(),
        },
    ];
    for err in &split {
        assert!(batch_wide_copies(err, 3).is_none(), "{err}");
    }
}

const SCHEMA: &str = "node Person { name: String @key\n age: I32? }\nedge Knows: Person -> Person";
const INSERT: &str =
    "query ins($name: String, $age: I32?) { insert Person { name: $name, age: $age } }";

fn catalog() -> Catalog {
    build_catalog(&parse_schema(SCHEMA).unwrap()).unwrap()
}

fn mutate(source: &str, name: &str, branch: &str, params: &[(&str, Literal)]) -> WriteOp {
    WriteOp::Mutate {
        branch: branch.into(),
        source: source.into(),
        name: name.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        actor: Some("a".into()),
    }
}

/// The required parameter of `INSERT`.
fn named() -> [(&'static str, Literal); 1] {
    [("name", Literal::String("n".into()))]
}

fn coalescer(max_batch_writes: usize) -> Coalescer {
    let settings = WriteConfig {
        coalesce: true,
        max_batch_writes,
        max_batch_bytes: 1 << 20,
        max_queue: 16,
        max_queue_bytes: 1 << 20,
        max_wait: std::time::Duration::ZERO,
        tenants: Default::default(),
    };
    Coalescer::new(settings, CoalescerMetrics::unregistered())
}

/// A reply port whose caller is still waiting (the receiver is kept alive).
fn port() -> Reply {
    let (port, receiver) = tokio::sync::oneshot::channel();
    std::mem::forget(receiver);
    port.into()
}

#[test]
fn plans_only_parameterised_inserts_of_known_types() {
    let catalog = catalog();
    let plan = insert_plan(&mutate(INSERT, "ins", "main", &named()), &catalog).unwrap();
    assert_eq!((plan.nodes, plan.edges), (1, 0));
    let edge = "query e($a: String, $b: String) { insert Knows { from: $a, to: $b } }";
    let ends = [
        ("a", Literal::String("x".into())),
        ("b", Literal::String("y".into())),
    ];
    let plan = insert_plan(&mutate(edge, "e", "main", &ends), &catalog).unwrap();
    assert_eq!((plan.nodes, plan.edges), (0, 1));
    for (source, name) in [
        (
            "query u($n: String) { update Person set { age: 1 } where name = $n }",
            "u",
        ),
        ("query l() { insert Person { name: \"x\" } }", "l"),
        ("query z($n: String) { insert Nope { name: $n } }", "z"),
        // Would not type-check: must run alone and get the engine's 400.
        (
            "query t($n: String, $a: String) { insert Person { name: $n, age: $a } }",
            "t",
        ),
        (
            "query p($n: String, $x: String) { insert Person { name: $n, nick: $x } }",
            "p",
        ),
    ] {
        assert!(
            insert_plan(&mutate(source, name, "main", &[]), &catalog).is_none(),
            "{source}"
        );
    }
}

#[test]
fn combined_source_parses_with_renamed_parameters() {
    let catalog = catalog();
    let mut coalescer = coalescer(8);
    for (i, branch) in ["main", "main", "feature", "main"].iter().enumerate() {
        let params = [
            ("name", Literal::String(format!("p{i}"))),
            ("age", Literal::Integer(i as i64)),
        ];
        coalescer.push(mutate(INSERT, "ins", branch, &params), port(), &catalog);
    }
    let Some(Unit::Batch(batch)) = coalescer.next_unit() else {
        panic!("a batch")
    };
    assert_eq!(
        batch.len(),
        3,
        "the feature-branch write does not join main's batch"
    );
    let (source, params) = combine(&batch);
    let decl = parse_query(&source).unwrap().queries.remove(0);
    assert_eq!(decl.mutations.len(), 3);
    assert_eq!(decl.params.len(), 6);
    assert!(matches!(&params["r2_name"], Literal::String(name) if name == "p3"));
    let Some(Unit::Batch(rest)) = coalescer.next_unit() else {
        panic!("a batch")
    };
    assert_eq!(rest.len(), 1);
    assert!(coalescer.is_empty());
}

#[test]
fn node_insert_batches_become_one_load_unless_a_key_repeats() {
    let catalog = catalog();
    let mut coalescer = coalescer(8);
    for name in ["a", "b"] {
        let params = [
            ("name", Literal::String(name.into())),
            ("age", Literal::Integer(3)),
        ];
        coalescer.push(mutate(INSERT, "ins", "main", &params), port(), &catalog);
    }
    let Some(Unit::Batch(batch)) = coalescer.next_unit() else {
        panic!("a batch")
    };
    let ndjson = node_load(&batch, &catalog).unwrap();
    let records: Vec<serde_json::Value> = ndjson
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        records,
        [
            serde_json::json!({"type": "Person", "data": {"name": "a", "age": 3}}),
            serde_json::json!({"type": "Person", "data": {"name": "b", "age": 3}}),
        ]
    );
    for _ in 0..2 {
        let params = [
            ("name", Literal::String("same".into())),
            ("age", Literal::Integer(1)),
        ];
        coalescer.push(mutate(INSERT, "ins", "main", &params), port(), &catalog);
    }
    let Some(Unit::Batch(batch)) = coalescer.next_unit() else {
        panic!("a batch")
    };
    assert!(
        node_load(&batch, &catalog).is_none(),
        "a repeated key stays a mutation"
    );
}

fn load(data: &str, mode: LoadMode, from: Option<&str>) -> WriteOp {
    WriteOp::Load {
        branch: "main".into(),
        from: from.map(str::to_string),
        data: data.into(),
        mode,
        actor: None,
    }
}

#[test]
fn plans_loads_with_their_own_counts_and_keys() {
    let catalog = catalog();
    let data = "{\"type\":\"Person\",\"data\":{\"name\":\"a\"}}\n\
                {\"type\": \"Person\", \"data\": {\"name\": \"b\"}}\n\
                {\"edge\":\"knows\",\"from\":\"a\",\"to\":\"b\"}";
    let plan = load_plan(&load(data, LoadMode::Merge, None), &catalog).unwrap();
    assert_eq!(plan.nodes["Person"], 2);
    assert_eq!(
        plan.edges["Knows"], 1,
        "edge names resolve case-insensitively"
    );
    assert_eq!(plan.keys.len(), 2);
    let duplicate = "{\"type\":\"Person\",\"data\":{\"name\":\"a\"}}\n{\"type\":\"Person\",\"data\":{\"name\":\"a\"}}";
    for op in [
        load(data, LoadMode::Overwrite, None),
        load(data, LoadMode::Merge, Some("main")),
        load("{\"type\":\"Nope\",\"data\":{}}", LoadMode::Merge, None),
        load("not json", LoadMode::Append, None),
        load(duplicate, LoadMode::Merge, None),
    ] {
        assert!(load_plan(&op, &catalog).is_none(), "{op:?}");
    }
}

#[test]
fn writes_of_callers_that_went_away_are_not_applied() {
    let catalog = catalog();
    let mut coalescer = coalescer(8);
    let (gone, receiver) = tokio::sync::oneshot::channel();
    drop(receiver);
    coalescer.push(
        mutate(INSERT, "ins", "main", &named()),
        gone.into(),
        &catalog,
    );
    coalescer.push(mutate(INSERT, "ins", "main", &named()), port(), &catalog);
    assert!(matches!(coalescer.next_unit(), Some(Unit::Batch(b)) if b.len() == 1));
    assert!(coalescer.next_unit().is_none());
}

#[test]
fn exclusive_writes_keep_their_place_and_the_queue_is_bounded() {
    let catalog = catalog();
    let mut coalescer = coalescer(8);
    let update = "query u($n: String) { update Person set { age: 1 } where name = $n }";
    coalescer.push(mutate(INSERT, "ins", "main", &named()), port(), &catalog);
    coalescer.push(mutate(update, "u", "main", &[]), port(), &catalog);
    coalescer.push(mutate(INSERT, "ins", "main", &named()), port(), &catalog);
    assert!(matches!(coalescer.next_unit(), Some(Unit::Batch(b)) if b.len() == 1));
    assert!(matches!(coalescer.next_unit(), Some(Unit::Alone(_))));
    assert!(matches!(coalescer.next_unit(), Some(Unit::Batch(b)) if b.len() == 1));

    for _ in 0..16 {
        coalescer.push(mutate(INSERT, "ins", "main", &named()), port(), &catalog);
    }
    let (reply, refused) = tokio::sync::oneshot::channel();
    coalescer.push(
        mutate(INSERT, "ins", "main", &named()),
        reply.into(),
        &catalog,
    );
    let answer = refused.blocking_recv().unwrap();
    assert!(matches!(answer, Err(RepoError::Overloaded { .. })));
    assert!(
        matches!(coalescer.next_unit(), Some(Unit::Batch(b)) if b.len() == 8),
        "bounded by max_batch_writes"
    );
}

#[test]
fn the_queue_is_bounded_in_bytes_but_always_takes_a_write_alone() {
    let catalog = catalog();
    let mut coalescer = coalescer(8);
    coalescer.settings.max_queue_bytes = 2_500;
    // Loads of about 1,000 bytes each.
    let rows = |name: &str| {
        let row = format!("{{\"type\":\"Person\",\"data\":{{\"name\":\"{name}\"}}}}\n");
        load(&row.repeat(1_000 / row.len() + 1), LoadMode::Append, None)
    };
    coalescer.push(rows("a"), port(), &catalog);
    coalescer.push(rows("b"), port(), &catalog);
    let (reply, refused) = tokio::sync::oneshot::channel();
    coalescer.push(rows("c"), reply.into(), &catalog);
    match refused.blocking_recv().unwrap() {
        Err(RepoError::Overloaded { message }) => {
            assert!(
                message.contains("writes.max_queue_bytes = 2500"),
                "{message}"
            )
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    assert_eq!(coalescer.len(), 2, "the refused write is not queued");
    while coalescer.next_unit().is_some() {}
    assert_eq!(coalescer.queued_bytes, 0);
    // Alone in the queue, a write larger than the bound is taken.
    coalescer.push(rows(&"d".repeat(3_000)), port(), &catalog);
    assert_eq!(coalescer.len(), 1);
}
