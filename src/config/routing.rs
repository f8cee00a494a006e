//! Configuration, routes: which offices answer for a contract, by ordered routes with
//! matchers on its fields, compiled from `[[routes]]`; first match wins unless the route says
//! `continue`. The findings stage counts unrouted findings with it, notify addresses digests.

use std::collections::HashMap;

use crate::domain::{Contract, ContractField, fold};

/// One `[[routes]]` entry, compiled.
#[derive(Debug, Clone)]
pub struct Route {
    /// Index into [`Settings::offices`](super::Settings::offices).
    pub office: usize,
    pub matchers: Vec<Matcher>,
    pub continue_: bool,
}

/// How a matcher compares a field.
#[derive(Debug, Clone)]
pub enum MatchOp {
    /// Equal after trimming, ignoring case and accents.
    Equals(String),
    /// Equal to any of these.
    OneOf(Vec<String>),
    /// The regular expression finds a match in the value.
    Regex(regex::Regex),
}

/// One condition of a route.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub field: ContractField,
    pub op: MatchOp,
}

impl Matcher {
    pub fn matches(&self, c: &Contract) -> bool {
        let Some(value) = self.field.get(c) else { return false };
        match &self.op {
            MatchOp::Equals(v) => fold(v) == fold(value),
            MatchOp::OneOf(vs) => {
                let value = fold(value);
                vs.iter().any(|v| fold(v) == value)
            }
            MatchOp::Regex(re) => re.is_match(value),
        }
    }
}

/// The routes, indexed by the equalities they require: routing a contract tries only the
/// routes that can match it (with one office per entity, a few of 10,000 routes, not all),
/// in route order, so the outcome is that of trying every route.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
    /// (field, folded value) → the routes one of whose matchers requires that value.
    by_value: HashMap<(ContractField, String), Vec<usize>>,
    /// The fields of `by_value`.
    fields: Vec<ContractField>,
    /// Routes without an equality matcher: tried for every contract.
    always: Vec<usize>,
}

impl Router {
    /// The routes in order, as text: what decides where a contract goes (the index is
    /// derived from them).
    pub fn fingerprint(&self) -> String {
        format!("{:?}", self.routes)
    }

    pub fn new(routes: Vec<Route>) -> Router {
        let mut router = Router { routes: Vec::new(), ..Default::default() };
        for (i, r) in routes.iter().enumerate() {
            let key = r.matchers.iter().find_map(|m| match &m.op {
                MatchOp::Equals(v) => Some((m.field, vec![fold(v)])),
                MatchOp::OneOf(vs) => Some((m.field, vs.iter().map(|v| fold(v)).collect())),
                MatchOp::Regex(_) => None,
            });
            match key {
                Some((field, values)) => {
                    if !router.fields.contains(&field) {
                        router.fields.push(field);
                    }
                    for v in values {
                        let at = router.by_value.entry((field, v)).or_default();
                        if at.last() != Some(&i) {
                            at.push(i);
                        }
                    }
                }
                None => router.always.push(i),
            }
        }
        router.routes = routes;
        router
    }
}

impl std::ops::Deref for Router {
    type Target = [Route];

    fn deref(&self) -> &[Route] {
        &self.routes
    }
}

/// The offices (indexes into the configured offices) a contract is routed to, in route
/// order, without repeats; empty when no route matches.
pub fn route(router: &Router, c: &Contract) -> Vec<usize> {
    let mut candidates = router.always.clone();
    for field in &router.fields {
        if let Some(value) = field.get(c)
            && let Some(routes) = router.by_value.get(&(*field, fold(value)))
        {
            candidates.extend(routes);
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut offices = Vec::new();
    for r in candidates.into_iter().map(|i| &router.routes[i]) {
        if r.matchers.iter().all(|m| m.matches(c)) {
            if !offices.contains(&r.office) {
                offices.push(r.office);
            }
            if !r.continue_ {
                break;
            }
        }
    }
    offices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_to(office: usize, matchers: Vec<Matcher>, continue_: bool) -> Route {
        Route { office, matchers, continue_ }
    }

    fn nit(v: &str) -> Matcher {
        Matcher { field: ContractField::NitEntidad, op: MatchOp::Equals(v.into()) }
    }

    #[test]
    fn the_first_matching_route_wins_unless_it_continues() {
        let c =
            Contract { id: "X".into(), entity_nit: Some("899999034".into()), ..Default::default() };
        let routes = vec![
            route_to(0, vec![nit("1")], false),
            route_to(1, vec![nit("899999034")], false),
            route_to(2, vec![], false),
        ];
        assert_eq!(route(&Router::new(routes), &c), vec![1]);
        let routes = vec![route_to(1, vec![nit("899999034")], true), route_to(2, vec![], false)];
        assert_eq!(route(&Router::new(routes), &c), vec![1, 2]);
    }

    #[test]
    fn one_of_and_regex_matchers_work_on_any_routable_field() {
        let c = Contract {
            id: "X".into(),
            modality: Some("Contratación directa".into()),
            spending_officer_name: Some("MARIA PEREZ".into()),
            ..Default::default()
        };
        let one_of = Matcher {
            field: ContractField::ModalidadDeContratacion,
            op: MatchOp::OneOf(vec!["contratacion directa".into(), "Mínima cuantía".into()]),
        };
        let re = Matcher {
            field: ContractField::NombreOrdenadorDelGasto,
            op: MatchOp::Regex(regex::Regex::new("(?i)perez").unwrap()),
        };
        assert!(one_of.matches(&c) && re.matches(&c));
        assert!(route(&Router::new(vec![route_to(3, vec![nit("1")], false)]), &c).is_empty());
    }

    /// Every route tried in order: what the index must give.
    fn route_all(routes: &[Route], c: &Contract) -> Vec<usize> {
        let mut offices = Vec::new();
        for r in routes {
            if r.matchers.iter().all(|m| m.matches(c)) {
                if !offices.contains(&r.office) {
                    offices.push(r.office);
                }
                if !r.continue_ {
                    break;
                }
            }
        }
        offices
    }

    proptest::proptest! {
        #[test]
        fn the_index_routes_as_trying_every_route_does(
            raw in proptest::collection::vec(
                (0usize..6, proptest::option::of(0u8..4), proptest::option::of(0u8..3), proptest::bool::ANY, proptest::bool::ANY),
                0..30,
            ),
            nits in proptest::collection::vec(proptest::option::of(0u8..4), 1..20),
        ) {
            let nit_value = |n: u8| ["1", " 899999034", "Ñandú 7", "X"][n as usize].to_string();
            let modalities = ["Contratación directa", "contratacion DIRECTA", "Mínima cuantía"];
            let routes: Vec<Route> = raw
                .iter()
                .map(|&(office, n, m, regex, continue_)| {
                    let mut matchers = Vec::new();
                    if regex {
                        matchers.push(Matcher {
                            field: ContractField::ModalidadDeContratacion,
                            op: MatchOp::Regex(regex::Regex::new("(?i)directa").unwrap()),
                        });
                    }
                    if let Some(n) = n {
                        matchers.push(nit(&nit_value(n)));
                    }
                    if let Some(m) = m {
                        matchers.push(Matcher {
                            field: ContractField::ModalidadDeContratacion,
                            op: MatchOp::OneOf(vec![modalities[m as usize].into(), "otra".into()]),
                        });
                    }
                    route_to(office, matchers, continue_)
                })
                .collect();
            let router = Router::new(routes.clone());
            for (i, n) in nits.iter().enumerate() {
                let c = Contract {
                    id: "X".into(),
                    entity_nit: n.map(|n| nit_value(n).to_lowercase()),
                    modality: Some(modalities[i % 3].into()),
                    ..Default::default()
                };
                proptest::prop_assert_eq!(route(&router, &c), route_all(&routes, &c));
            }
        }
    }
}
