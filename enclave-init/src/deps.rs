//! Start order from `Before`/`After`/`Requires`: a topological sort (Kahn's
//! algorithm), with cycle detection.
//!
//! An edge `a -> b` means "a starts before b": `After = [a]` in b, `Before =
//! [b]` in a, `Requires = [a]` and `Wants = [a]` in b all make one. References to services
//! that do not exist are ignored for ordering (soft dependencies); a missing
//! `Requires` target is reported. Among services that are free to start, the
//! one whose name sorts first goes first, so the order does not depend on
//! the order of the directory listing. Services caught in a cycle (or
//! waiting on one) start last, in name order, and the cycle is reported.

use std::collections::{BTreeMap, BTreeSet};

use crate::service::Dependencies;

/// The computed start order and what is wrong with the graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartPlan {
    /// Every service, in start order (stop order is the reverse).
    pub order: Vec<String>,
    /// Each cycle found, as the path `a -> b -> ... -> a`.
    pub cycles: Vec<Vec<String>>,
    /// `(service, missing required service)` pairs.
    pub missing_requires: Vec<(String, String)>,
}

impl StartPlan {
    /// The cycle a service is part of, if any.
    pub fn cycle_of(&self, name: &str) -> Option<&[String]> {
        self.cycles
            .iter()
            .find(|c| c.iter().any(|n| n == name))
            .map(Vec::as_slice)
    }
}

/// Computes the start order of `services`.
pub fn plan(services: &BTreeMap<String, Dependencies>) -> StartPlan {
    // successors[a] = services that start after a.
    let mut successors: BTreeMap<&str, BTreeSet<&str>> = services
        .keys()
        .map(|k| (k.as_str(), BTreeSet::new()))
        .collect();
    let mut missing_requires = Vec::new();
    for (name, deps) in services {
        for before_me in deps.after.iter().chain(&deps.requires).chain(&deps.wants) {
            if let Some(set) = successors.get_mut(before_me.as_str()) {
                set.insert(name.as_str());
            }
        }
        for after_me in &deps.before {
            if services.contains_key(after_me)
                && let Some(set) = successors.get_mut(name.as_str())
            {
                set.insert(after_me.as_str());
            }
        }
        for required in &deps.requires {
            if !services.contains_key(required) {
                missing_requires.push((name.clone(), required.clone()));
            }
        }
    }
    let mut in_degree: BTreeMap<&str, usize> = successors.keys().map(|k| (*k, 0)).collect();
    for succ in successors.values() {
        for s in succ {
            if let Some(d) = in_degree.get_mut(s) {
                *d += 1;
            }
        }
    }
    let mut ready: BTreeSet<&str> = in_degree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut order = Vec::with_capacity(services.len());
    while let Some(next) = ready.pop_first() {
        order.push(next.to_owned());
        for s in &successors[next] {
            if let Some(d) = in_degree.get_mut(s) {
                *d -= 1;
                if *d == 0 {
                    ready.insert(s);
                }
            }
        }
    }
    let left: BTreeSet<&str> = in_degree
        .iter()
        .filter(|(_, d)| **d > 0)
        .map(|(n, _)| *n)
        .collect();
    let cycles = find_cycles(&successors, &left);
    order.extend(left.iter().map(|s| (*s).to_owned()));
    StartPlan {
        order,
        cycles,
        missing_requires,
    }
}

/// Finds one cycle per strongly connected group among `left` (the nodes
/// Kahn's algorithm could not order), by walking successors until a node
/// repeats.
fn find_cycles(
    successors: &BTreeMap<&str, BTreeSet<&str>>,
    left: &BTreeSet<&str>,
) -> Vec<Vec<String>> {
    let mut cycles: Vec<Vec<String>> = Vec::new();
    let mut covered: BTreeSet<&str> = BTreeSet::new();
    for start in left {
        if covered.contains(start) {
            continue;
        }
        // Follow successors inside `left` that lead back to `start` until a
        // node repeats: the repeated stretch is a cycle.
        let mut path: Vec<&str> = vec![start];
        let mut seen: BTreeMap<&str, usize> = BTreeMap::from([(*start, 0)]);
        let mut current = *start;
        loop {
            let next = successors[current]
                .iter()
                .find(|s| left.contains(*s) && reaches(successors, left, s, start));
            let Some(next) = next.copied() else {
                // `start` is not on a cycle, only behind one.
                break;
            };
            if let Some(&at) = seen.get(next) {
                let mut cycle: Vec<String> = path[at..].iter().map(|s| (*s).to_owned()).collect();
                cycle.push(next.to_owned());
                covered.extend(path[at..].iter().copied());
                if !cycles.iter().any(|c| same_cycle(c, &cycle)) {
                    cycles.push(cycle);
                }
                break;
            }
            seen.insert(next, path.len());
            path.push(next);
            current = next;
        }
    }
    cycles
}

/// Whether `to` can be reached from `from` inside `left`.
fn reaches(
    successors: &BTreeMap<&str, BTreeSet<&str>>,
    left: &BTreeSet<&str>,
    from: &str,
    to: &str,
) -> bool {
    let mut stack = vec![from];
    let mut visited = BTreeSet::new();
    while let Some(node) = stack.pop() {
        if node == to {
            return true;
        }
        if !visited.insert(node) {
            continue;
        }
        stack.extend(successors[node].iter().filter(|s| left.contains(*s)));
    }
    false
}

fn same_cycle(a: &[String], b: &[String]) -> bool {
    let set_a: BTreeSet<&String> = a.iter().collect();
    let set_b: BTreeSet<&String> = b.iter().collect();
    set_a == set_b
}

/// Formats a cycle as `a -> b -> a`.
pub fn format_cycle(cycle: &[String]) -> String {
    cycle.join(" -> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(after: &[&str], before: &[&str], requires: &[&str]) -> Dependencies {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Dependencies {
            after: v(after),
            before: v(before),
            requires: v(requires),
            required_by: Vec::new(),
            wants: Vec::new(),
        }
    }

    fn position(plan: &StartPlan, name: &str) -> usize {
        plan.order.iter().position(|n| n == name).unwrap()
    }

    #[test]
    fn the_worked_example_of_the_spec() {
        let services = BTreeMap::from([
            ("redis".into(), deps(&[], &["cache-warmer", "webapp"], &[])),
            (
                "cache-warmer".into(),
                deps(&["redis"], &["webapp"], &["redis"]),
            ),
            ("database".into(), deps(&[], &["webapp"], &[])),
            (
                "webapp".into(),
                deps(&["database", "cache-warmer"], &[], &["database"]),
            ),
        ]);
        let plan = plan(&services);
        assert_eq!(plan.order, ["database", "redis", "cache-warmer", "webapp"]);
        assert!(position(&plan, "redis") < position(&plan, "cache-warmer"));
        assert!(plan.cycles.is_empty());
        assert!(plan.missing_requires.is_empty());
    }

    #[test]
    fn before_is_the_reverse_of_after() {
        let a = plan(&BTreeMap::from([
            ("a".into(), deps(&[], &[], &[])),
            ("b".into(), deps(&["a"], &[], &[])),
        ]));
        let b = plan(&BTreeMap::from([
            ("a".into(), deps(&[], &["b"], &[])),
            ("b".into(), deps(&[], &[], &[])),
        ]));
        assert_eq!(a.order, b.order);
        let reversed = plan(&BTreeMap::from([
            ("a".into(), deps(&["b"], &[], &[])),
            ("b".into(), deps(&[], &[], &[])),
        ]));
        assert_eq!(reversed.order, ["b", "a"]);
    }

    #[test]
    fn cycles_are_found_and_everything_is_still_ordered() {
        let services = BTreeMap::from([
            ("a".into(), deps(&["b"], &[], &[])),
            ("b".into(), deps(&["a"], &[], &[])),
            ("c".into(), deps(&["b"], &[], &[])),
            ("free".into(), deps(&[], &[], &[])),
            ("x".into(), deps(&["z"], &[], &[])),
            ("y".into(), deps(&["x"], &[], &[])),
            ("z".into(), deps(&["y"], &[], &["ghost"])),
        ]);
        let plan = plan(&services);
        assert_eq!(plan.order.len(), 7);
        assert_eq!(plan.order[0], "free");
        assert_eq!(plan.cycles.len(), 2, "{:?}", plan.cycles);
        assert_eq!(format_cycle(&plan.cycles[0]), "a -> b -> a");
        assert_eq!(plan.cycles[1].len(), 4);
        assert!(plan.cycle_of("c").is_none());
        assert!(plan.cycle_of("y").is_some());
        assert_eq!(plan.missing_requires, [("z".into(), "ghost".into())]);
    }

    #[test]
    fn soft_references_to_missing_services_are_ignored() {
        let plan = plan(&BTreeMap::from([(
            "a".into(),
            deps(&["nothing"], &["nobody"], &[]),
        )]));
        assert_eq!(plan.order, ["a"]);
    }
}
