//! The REST routes of the contract, read from the `google.api.http`
//! annotation of every method in the descriptor set, and matching a request's
//! verb and path to one of them with its path variables.

use foodfast_api::google::api::{HttpRule, http_rule::Pattern};
use prost_reflect::{DescriptorPool, MethodDescriptor, Value};

/// HTTP verbs the annotations use, in the order `Allow` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    pub fn parse(method: &str) -> Option<Self> {
        Some(match method {
            "GET" => Verb::Get,
            "POST" => Verb::Post,
            "PUT" => Verb::Put,
            "PATCH" => Verb::Patch,
            "DELETE" => Verb::Delete,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
        }
    }
}

/// Where the request message comes from besides the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyMapping {
    /// No body: the remaining fields come from the query string.
    None,
    /// `body: "*"`: the JSON body is the request message (minus path fields).
    Whole,
    /// `body: "field"`: the JSON body is that field; the rest from the query.
    Field(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// A path variable naming a request field (dotted for nested fields).
    Variable(String),
}

/// One REST route: a verb and a path template bound to a gRPC method.
#[derive(Debug, Clone)]
pub struct Route {
    pub verb: Verb,
    pub method: MethodDescriptor,
    pub body: BodyMapping,
    segments: Vec<Segment>,
}

impl Route {
    /// The template as written in the annotation, e.g. `/api/v1/orders/{order_id}`.
    pub fn template(&self) -> String {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(literal) => format!("/{literal}"),
                Segment::Variable(field) => format!("/{{{field}}}"),
            })
            .collect()
    }

    /// The fields the path fills, in order.
    pub fn path_fields(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Variable(field) => Some(field.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The path variables of `path`, if it fits this template.
    fn bind<'p>(&self, path: &[&'p str]) -> Option<Vec<(&str, &'p str)>> {
        if path.len() != self.segments.len() {
            return None;
        }
        let mut bound = Vec::new();
        for (segment, part) in self.segments.iter().zip(path) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Variable(_) if part.is_empty() => return None,
                Segment::Variable(field) => bound.push((field.as_str(), *part)),
            }
        }
        Some(bound)
    }

    /// Literal segments before the first variable: the more, the more
    /// specific (`/restaurants/orders/{id}` beats `/restaurants/{id}/…`).
    fn specificity(&self) -> Vec<bool> {
        self.segments.iter().map(|segment| matches!(segment, Segment::Literal(_))).collect()
    }
}

/// Why the descriptor set's annotations cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("the descriptor set does not decode: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    #[error("the descriptor set lacks the google.api.http extension")]
    NoHttpExtension,
    #[error("{method}: {message}")]
    Annotation { method: String, message: String },
    #[error("{first} and {second} both claim {verb} {template}")]
    Clash { verb: &'static str, template: String, first: String, second: String },
}

/// A matched route and the request fields its path variables fill (field
/// path, still percent-encoded value).
pub type Match<'t, 'p> = (&'t Route, Vec<(&'t str, &'p str)>);

/// Why no route answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// Nothing has this path: 404.
    NotFound,
    /// The path exists with other verbs: 405 naming them.
    MethodNotAllowed(Vec<Verb>),
}

/// Every annotated method of the contract, most specific template first.
#[derive(Debug, Clone)]
pub struct RouteTable {
    pool: DescriptorPool,
    routes: Vec<Route>,
}

impl RouteTable {
    /// Reads the routes of every service in `descriptor_set` (an encoded
    /// `FileDescriptorSet`).
    pub fn from_descriptor_set(descriptor_set: &[u8]) -> Result<Self, RouteError> {
        let pool = DescriptorPool::decode(descriptor_set)?;
        let http = pool.get_extension_by_name("google.api.http").ok_or(RouteError::NoHttpExtension)?;
        let mut routes = Vec::new();
        for service in pool.services() {
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&http) {
                    continue;
                }
                let annotation =
                    |message: String| RouteError::Annotation { method: method.full_name().into(), message };
                let Value::Message(rule) = options.get_extension(&http).into_owned() else {
                    return Err(annotation("google.api.http is not a message".into()));
                };
                let rule: HttpRule = rule.transcode_to().map_err(|err| annotation(err.to_string()))?;
                routes.push(route(&method, &rule).map_err(annotation)?);
                for binding in &rule.additional_bindings {
                    routes.push(route(&method, binding).map_err(annotation)?);
                }
            }
        }
        routes.sort_by_key(|route| std::cmp::Reverse(route.specificity()));
        for (i, first) in routes.iter().enumerate() {
            if let Some(second) =
                routes[i + 1..].iter().find(|other| other.verb == first.verb && other.segments == first.segments)
            {
                return Err(RouteError::Clash {
                    verb: first.verb.as_str(),
                    template: first.template(),
                    first: first.method.full_name().into(),
                    second: second.method.full_name().into(),
                });
            }
        }
        Ok(Self { pool, routes })
    }

    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `verb` and `path` (without the query string).
    pub fn find<'p>(&self, verb: Verb, path: &'p str) -> Result<Match<'_, 'p>, NoRoute> {
        let parts = path_segments(path);
        let found = self.routes.iter().filter(|route| route.verb == verb).find_map(|route| {
            let bound = route.bind(&parts)?;
            Some((route, bound))
        });
        if let Some(found) = found {
            return Ok(found);
        }
        let verbs = self.verbs(path);
        if verbs.is_empty() { Err(NoRoute::NotFound) } else { Err(NoRoute::MethodNotAllowed(verbs)) }
    }

    /// The verbs `path` is served with, in order (none: no such path).
    pub fn verbs(&self, path: &str) -> Vec<Verb> {
        let parts = path_segments(path);
        let mut verbs = Vec::new();
        for route in &self.routes {
            if !verbs.contains(&route.verb) && route.bind(&parts).is_some() {
                verbs.push(route.verb);
            }
        }
        verbs.sort();
        verbs
    }
}

fn path_segments(path: &str) -> Vec<&str> {
    path.strip_prefix('/').unwrap_or(path).split('/').collect()
}

fn route(method: &MethodDescriptor, rule: &HttpRule) -> Result<Route, String> {
    let (verb, template) = match rule.pattern.as_ref() {
        Some(Pattern::Get(path)) => (Verb::Get, path),
        Some(Pattern::Post(path)) => (Verb::Post, path),
        Some(Pattern::Put(path)) => (Verb::Put, path),
        Some(Pattern::Patch(path)) => (Verb::Patch, path),
        Some(Pattern::Delete(path)) => (Verb::Delete, path),
        Some(Pattern::Custom(custom)) => return Err(format!("custom verb {:?} is not served", custom.kind)),
        None => return Err("the rule has no verb and path".into()),
    };
    let input = method.input();
    let segments = template
        .strip_prefix('/')
        .ok_or_else(|| format!("template {template:?} must start with /"))?
        .split('/')
        .map(|part| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(variable) => {
                let field = variable.strip_suffix("=*").unwrap_or(variable);
                if field.contains(['=', '*']) {
                    return Err(format!("path variable {{{variable}}} (only {{field}} and {{field=*}} are served)"));
                }
                if !field_exists(&input, field) {
                    return Err(format!("path variable {{{field}}} is not a field of {}", input.full_name()));
                }
                Ok(Segment::Variable(field.to_string()))
            }
            None if part.is_empty() || part.contains(['{', '}', '*', ':']) => {
                Err(format!("template {template:?}: segment {part:?} is not served"))
            }
            None => Ok(Segment::Literal(part.to_string())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let body = match rule.body.as_str() {
        "" => BodyMapping::None,
        "*" => BodyMapping::Whole,
        field if input.get_field_by_name(field).is_some() => BodyMapping::Field(field.to_string()),
        field => return Err(format!("body field {field:?} is not a field of {}", input.full_name())),
    };
    if !rule.response_body.is_empty() {
        return Err("response_body is not served".into());
    }
    Ok(Route { verb, method: method.clone(), body, segments })
}

/// Whether the dotted `path` names a (possibly nested) field of `message`.
fn field_exists(message: &prost_reflect::MessageDescriptor, path: &str) -> bool {
    let mut message = message.clone();
    let mut fields = path.split('.').peekable();
    while let Some(name) = fields.next() {
        let Some(field) = message.get_field_by_name(name) else { return false };
        if fields.peek().is_none() {
            return true;
        }
        match field.kind() {
            prost_reflect::Kind::Message(inner) => message = inner,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::from_descriptor_set(foodfast_api::FILE_DESCRIPTOR_SET).unwrap()
    }

    #[test]
    fn every_annotated_method_of_the_contract_becomes_a_route() {
        let table = table();
        let annotated = table
            .pool()
            .services()
            .flat_map(|service| service.methods().collect::<Vec<_>>())
            .filter(|method| {
                method.options().has_extension(&table.pool().get_extension_by_name("google.api.http").unwrap())
            })
            .count();
        assert!(annotated > 30, "{annotated}");
        assert_eq!(table.routes().len(), annotated, "one route per annotation (no additional bindings yet)");
    }

    #[test]
    fn the_issue_routes_resolve_to_their_methods_with_path_fields() {
        let table = table();
        let cases = [
            (Verb::Get, "/api/v1/restaurants", "foodfast.v1.RestaurantService.SearchNearby", vec![]),
            (
                Verb::Get,
                "/api/v1/restaurants/r1/menu",
                "foodfast.v1.RestaurantService.GetMenu",
                vec![("restaurant_id", "r1")],
            ),
            (Verb::Post, "/api/v1/orders/quote", "foodfast.v1.OrderService.Quote", vec![]),
            (Verb::Post, "/api/v1/orders", "foodfast.v1.OrderService.CreateOrder", vec![]),
            (Verb::Get, "/api/v1/orders/o1", "foodfast.v1.OrderService.GetOrder", vec![("order_id", "o1")]),
            (Verb::Get, "/api/v1/orders", "foodfast.v1.OrderService.ListOrders", vec![]),
            (Verb::Post, "/api/v1/orders/o1/cancel", "foodfast.v1.OrderService.CancelOrder", vec![("order_id", "o1")]),
            (
                Verb::Patch,
                "/api/v1/restaurants/orders/o1",
                "foodfast.v1.RestaurantService.UpdateOrderStatus",
                vec![("order_id", "o1")],
            ),
            (Verb::Post, "/api/v1/drivers/location", "foodfast.v1.DriverService.ReportLocation", vec![]),
            (
                Verb::Post,
                "/api/v1/drivers/deliveries/d1/accept",
                "foodfast.v1.DriverService.AcceptOffer",
                vec![("delivery_id", "d1")],
            ),
            (Verb::Get, "/api/v1/orders/o1/track", "foodfast.v1.TrackingService.TrackOrder", vec![("order_id", "o1")]),
        ];
        for (verb, path, method, fields) in cases {
            let (route, bound) = table.find(verb, path).unwrap_or_else(|err| panic!("{verb:?} {path}: {err:?}"));
            assert_eq!(route.method.full_name(), method, "{path}");
            assert_eq!(bound, fields, "{path}");
        }
    }

    #[test]
    fn a_wrong_verb_names_the_allowed_ones_and_an_unknown_path_is_not_found() {
        let table = table();
        assert_eq!(
            table.find(Verb::Delete, "/api/v1/orders/o1/cancel").unwrap_err(),
            NoRoute::MethodNotAllowed(vec![Verb::Post])
        );
        assert_eq!(table.find(Verb::Get, "/api/v1/nothing").unwrap_err(), NoRoute::NotFound);
        assert_eq!(table.find(Verb::Get, "/api/v1/orders//track").unwrap_err(), NoRoute::NotFound, "empty variable");
    }
}
