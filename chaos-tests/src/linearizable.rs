//! Linearizability of a chaos history's `main` branch (its events made by
//! [`crate::history::events`]), as a cross-check of the rules in [`crate::history`]: is there
//! one total order of the operations, each placed between its
//! invocation and its answer, in which every export sees exactly the ids written before it?
//!
//! The object is a set of ids. Inserts and loads on `main` add theirs; a merge into `main`
//! adds the ids of its branch that `main` holds in the end (ids are unique, so those came
//! through it); an export reads the whole set; the healed graph is a last read, after
//! everything. A write answered 2xx must be placed; a write without an answer (or with a
//! 5xx) may be placed or left out; a refused one has no effect.
//!
//! Two checkers answer the same question, and the tests hold them to the same answers:
//!
//! - [`check`] uses what this object allows: adds commute, so a history is linearizable when
//!   the reads' sets are nested and the adds can be slotted between them in time. It orders
//!   the reads by their sets and places every operation as early as its window allows. Linear
//!   in the history, after a sort.
//! - [`search`] knows nothing of that: it tries every order (Wing and Gong's search, with
//!   memory of the sets of operations already placed), for histories of up to 128
//!   operations, within a budget of steps.

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// One operation on `main`, reduced to what linearizability needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub invoke: u64,
    /// `u64::MAX` for a write whose outcome is unknown.
    pub ret: u64,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Adds these ids; `required` unless its outcome is unknown.
    Add { ids: Vec<String>, required: bool },
    /// Saw exactly these ids.
    Read { ids: BTreeSet<String> },
}

/// Whether `events` are linearizable, using that adds commute; why not, if not.
pub fn check(events: &[Event]) -> Result<(), String> {
    let mut owner: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        if let Kind::Add { ids, .. } = &event.kind {
            for id in ids {
                if owner.insert(id, index).is_some() {
                    return Err(format!("id {id} is written twice"));
                }
            }
        }
    }
    // Each read as the set of adds it saw: all of an add's ids, or none of them.
    let mut reads: Vec<(usize, BTreeSet<usize>)> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let Kind::Read { ids } = &event.kind else {
            continue;
        };
        let mut saw = BTreeSet::new();
        for id in ids {
            let Some(add) = owner.get(id.as_str()) else {
                return Err(format!("read {index} saw {id}, which nothing wrote"));
            };
            saw.insert(*add);
        }
        for add in &saw {
            if let Kind::Add { ids: written, .. } = &events[*add].kind
                && let Some(missing) = written.iter().find(|id| !ids.contains(*id))
            {
                return Err(format!(
                    "read {index} saw part of write {add}: not {missing}"
                ));
            }
        }
        reads.push((index, saw));
    }
    // One order: the reads' sets must be nested.
    reads.sort_by_key(|(index, saw)| (saw.len(), events[*index].invoke));
    for pair in reads.windows(2) {
        if !pair[0].1.is_subset(&pair[1].1) {
            return Err(format!(
                "reads {} and {} saw sets neither of which holds the other",
                pair[0].0, pair[1].0
            ));
        }
    }
    // Slot each add before the first read that saw it; those no read saw are left out
    // (a required one is in the healed graph, the last read, or that read refuses it).
    let mut slot: Vec<Vec<usize>> = vec![Vec::new(); reads.len()];
    for (index, event) in events.iter().enumerate() {
        if let Kind::Add { required, ids } = &event.kind {
            match reads.iter().position(|(_, saw)| saw.contains(&index)) {
                Some(position) => slot[position].push(index),
                // An add of nothing can go anywhere.
                None if *required && !ids.is_empty() => {
                    return Err(format!("write {index} was acknowledged and never seen"));
                }
                None => {}
            }
        }
    }
    // Place everything as early as its window allows, slot after slot: the adds a group of
    // reads with the same set saw first (in any order among themselves), then those reads
    // (in any order too). Earliest is best: it leaves the most room to what comes after.
    let mut now = 0u64;
    let mut position = 0;
    while position < reads.len() {
        let end = (position..reads.len())
            .find(|next| reads[*next].1 != reads[position].1)
            .unwrap_or(reads.len());
        let mut after = now;
        for add in slot[position..end].iter().flatten() {
            let point = now.max(events[*add].invoke);
            if point > events[*add].ret {
                return Err(format!(
                    "write {add} answered before a read that did not see it was placed"
                ));
            }
            after = after.max(point);
        }
        now = after;
        for (read, _) in &reads[position..end] {
            let point = after.max(events[*read].invoke);
            if point > events[*read].ret {
                return Err(format!(
                    "read {read} answered before a write it saw could be placed"
                ));
            }
            now = now.max(point);
        }
        position = end;
    }
    Ok(())
}

/// What [`search`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Searched {
    Linearizable,
    NotLinearizable,
    /// The budget of steps ran out first, or the history is too long.
    Undecided,
}

/// The most writes of unknown outcome [`search`] takes on.
const MOST_OPTIONAL: usize = 16;

/// Whether `events` are linearizable, by trying orders, for up to 128 events of which at
/// most 16 are writes of unknown outcome, within `budget` steps.
pub fn search(events: &[Event], budget: u64) -> Searched {
    // Each write of unknown outcome doubles what may have to be tried (placed or left out).
    let optional = events
        .iter()
        .filter(|event| {
            matches!(
                event.kind,
                Kind::Add {
                    required: false,
                    ..
                }
            )
        })
        .count();
    if events.len() > 128 || optional > MOST_OPTIONAL {
        return Searched::Undecided;
    }
    let mut search = Search {
        events,
        seen: HashSet::new(),
        steps: 0,
        budget,
    };
    match search.from(0, &BTreeSet::new()) {
        Some(true) => Searched::Linearizable,
        Some(false) => Searched::NotLinearizable,
        None => Searched::Undecided,
    }
}

struct Search<'a> {
    events: &'a [Event],
    /// Sets of placed events already tried (the set of ids follows from them).
    seen: HashSet<u128>,
    steps: u64,
    budget: u64,
}

impl Search<'_> {
    /// Whether the events not in `placed` can be placed after those that are, on `state`;
    /// `None` when the budget ran out.
    fn from(&mut self, placed: u128, state: &BTreeSet<String>) -> Option<bool> {
        self.steps += 1;
        if self.steps > self.budget {
            return None;
        }
        if !self.seen.insert(placed) {
            return Some(false);
        }
        let pending = |index: usize| placed & (1u128 << index) == 0;
        let must = |event: &Event| match &event.kind {
            Kind::Add { required, .. } => *required,
            Kind::Read { .. } => true,
        };
        let Some(deadline) = (0..self.events.len())
            .filter(|index| pending(*index) && must(&self.events[*index]))
            .map(|index| self.events[index].ret)
            .min()
        else {
            return Some(true); // only optional writes left: leave them out
        };
        // Any pending event sent before the earliest answer still due may go next.
        for index in 0..self.events.len() {
            let event = &self.events[index];
            if !pending(index) || event.invoke > deadline {
                continue;
            }
            let next = placed | (1u128 << index);
            let found = match &event.kind {
                Kind::Read { ids } if ids == state => self.from(next, state),
                Kind::Read { .. } => Some(false),
                Kind::Add { ids, .. } => {
                    let mut after = state.clone();
                    after.extend(ids.iter().cloned());
                    self.from(next, &after)
                }
            };
            match found {
                Some(false) => {}
                other => return other,
            }
        }
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(invoke: u64, ret: u64, ids: &[&str]) -> Event {
        Event {
            invoke,
            ret,
            kind: Kind::Add {
                ids: ids.iter().map(|id| id.to_string()).collect(),
                required: ret != u64::MAX,
            },
        }
    }

    fn read(invoke: u64, ret: u64, ids: &[&str]) -> Event {
        Event {
            invoke,
            ret,
            kind: Kind::Read {
                ids: ids.iter().map(|id| id.to_string()).collect(),
            },
        }
    }

    /// Both checkers' answers, which must agree.
    fn both(events: &[Event]) -> bool {
        let fast = check(events).is_ok();
        let slow = search(events, 10_000_000);
        assert_ne!(slow, Searched::Undecided);
        assert_eq!(
            fast,
            slow == Searched::Linearizable,
            "the checkers disagree on {events:#?}: {:?}",
            check(events)
        );
        fast
    }

    #[test]
    fn known_histories_get_the_known_answers() {
        // Concurrent with both adds, each read may see either.
        assert!(both(&[
            add(0, 10, &["x"]),
            add(0, 10, &["y"]),
            read(1, 9, &["x"]),
            read(11, 12, &["x", "y"]),
        ]));
        // Two concurrent reads that each saw one of two adds: no single order.
        assert!(!both(&[
            add(0, 10, &["x"]),
            add(0, 10, &["y"]),
            read(1, 9, &["x"]),
            read(1, 9, &["y"]),
            read(11, 12, &["x", "y"]),
        ]));
        // A read that missed a write answered before it was sent.
        assert!(!both(&[
            add(0, 5, &["x"]),
            read(6, 7, &[]),
            read(8, 9, &["x"])
        ]));
        // A later read that no longer sees what an earlier one did.
        assert!(!both(&[
            add(0, 20, &["x"]),
            read(1, 2, &["x"]),
            read(3, 4, &[]),
            read(21, 22, &["x"]),
        ]));
        // Half of a load.
        assert!(!both(&[
            add(0, 10, &["a", "b"]),
            read(1, 2, &["a"]),
            read(11, 12, &["a", "b"])
        ]));
        // An unknown outcome may land or not; an acknowledged write must.
        assert!(both(&[add(0, u64::MAX, &["x"]), read(5, 6, &[])]));
        assert!(both(&[add(0, u64::MAX, &["x"]), read(5, 6, &["x"])]));
        assert!(!both(&[add(0, 3, &["x"]), read(5, 6, &[])]));
    }

    /// Random histories of a correct set (each operation takes effect at a random point of
    /// its window), some of them then corrupted: the two checkers agree on every one, and
    /// every uncorrupted one is linearizable.
    #[test]
    fn the_checkers_agree_on_random_histories() {
        let mut rng = fastrand::Rng::with_seed(19);
        let mut rejected = 0;
        for round in 0..6000 {
            let mut events = Vec::new();
            let mut points = Vec::new();
            for n in 0..rng.usize(2..14) {
                let invoke = rng.u64(0..40);
                let ret = invoke + rng.u64(1..15);
                let point = rng.u64(invoke..ret);
                let unknown = rng.f64() < 0.2;
                if rng.f64() < 0.6 {
                    let ids: Vec<String> =
                        (0..rng.usize(0..3)).map(|k| format!("{n}.{k}")).collect();
                    // An unknown outcome lands or not.
                    let lands = !unknown || rng.bool();
                    events.push(Event {
                        invoke,
                        ret: if unknown { u64::MAX } else { ret },
                        kind: Kind::Add {
                            ids: ids.clone(),
                            required: !unknown,
                        },
                    });
                    points.push((point, lands.then_some(ids)));
                } else {
                    events.push(read(invoke, ret, &[]));
                    points.push((point, None));
                }
            }
            // Each read sees what landed before its point.
            for index in 0..events.len() {
                if let Kind::Read { .. } = events[index].kind {
                    let ids = points
                        .iter()
                        .filter(|(point, _)| *point < points[index].0)
                        .flat_map(|(_, ids)| ids.iter().flatten().cloned())
                        .collect();
                    events[index].kind = Kind::Read { ids };
                }
            }
            let all = points
                .iter()
                .flat_map(|(_, ids)| ids.iter().flatten().cloned())
                .collect();
            events.push(Event {
                invoke: 100,
                ret: 100,
                kind: Kind::Read { ids: all },
            });
            let corrupt = round % 2 == 1;
            if corrupt {
                let reads: Vec<usize> = (0..events.len())
                    .filter(|i| matches!(events[*i].kind, Kind::Read { .. }))
                    .collect();
                let target = reads[rng.usize(..reads.len())];
                if let Kind::Read { ids } = &mut events[target].kind {
                    let id = format!("{}.0", rng.usize(0..14));
                    if !ids.remove(&id) {
                        ids.insert(id);
                    }
                }
            }
            let answer = both(&events);
            assert!(corrupt || answer, "a correct history refused: {events:#?}");
            rejected += usize::from(!answer);
        }
        assert!(rejected > 1000, "corruptions were caught: {rejected}");
    }
}
