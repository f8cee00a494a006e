//! Configuration, routes: which offices answer for a contract, by ordered routes with
//! matchers on its fields, compiled from `[[routes]]`; first match wins unless the route says
//! `continue`. The findings stage counts unrouted findings with it, notify addresses digests.

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

/// The offices (indexes into the configured offices) a contract is routed to, in route
/// order, without repeats; empty when no route matches.
pub fn route(routes: &[Route], c: &Contract) -> Vec<usize> {
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
        assert_eq!(route(&routes, &c), vec![1]);
        let routes = vec![route_to(1, vec![nit("899999034")], true), route_to(2, vec![], false)];
        assert_eq!(route(&routes, &c), vec![1, 2]);
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
        assert!(route(&[route_to(3, vec![nit("1")], false)], &c).is_empty());
    }
}
