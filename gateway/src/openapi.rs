//! The OpenAPI 3 document of the REST routes, generated from the same
//! descriptors and annotations the gateway routes with, so it cannot drift:
//! one operation per route, its path, query and body parameters, its answer
//! (JSON, or Server-Sent Events for server streams) and the error body.
//! Schemas follow the proto3 JSON mapping the transcoder uses.

use std::collections::BTreeMap;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::routes::{BodyMapping, Route, RouteTable};
use crate::upload::{self, Upload};

/// Where the document is served.
pub const PATH: &str = "/api/v1/openapi.json";

/// The document for every route of `table`.
pub fn document(table: &RouteTable) -> Value {
    let mut schemas = Schemas::default();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for route in table.routes() {
        let operation = operation(route, &mut schemas);
        paths.entry(route.template()).or_default().insert(route.verb.as_str().to_ascii_lowercase(), operation);
    }
    let upload = upload_operation(&Upload::new(table.pool()), &mut schemas);
    paths.entry(upload::PATH.into()).or_default().insert("post".into(), upload);
    let mut components = schemas.done;
    components.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "FoodFast REST API",
            "version": "v1",
            "description": "REST/JSON and Server-Sent Events over the FoodFast gRPC contract \
                            (proto3 JSON mapping). Callers send `Authorization: Bearer <token>`.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}, {}],
    })
}

fn operation(route: &Route, schemas: &mut Schemas) -> Value {
    let method = &route.method;
    let input = method.input();
    let path_fields: Vec<&str> = route.path_fields().collect();
    let mut parameters: Vec<Value> = path_fields
        .iter()
        .map(|field| {
            let descriptor = nested_field(&input, field).expect("routes bind existing fields");
            json!({"name": field, "in": "path", "required": true, "schema": schemas.field(&descriptor)})
        })
        .collect();
    let mut operation = Map::new();
    let body_fields: Option<Vec<FieldDescriptor>> = match &route.body {
        BodyMapping::None => {
            for field in input.fields().filter(|field| !path_fields.contains(&field.name())) {
                if is_query_parameter(&field) {
                    parameters.push(json!({
                        "name": field.json_name(),
                        "in": "query",
                        "required": false,
                        "schema": schemas.field(&field),
                    }));
                }
            }
            None
        }
        BodyMapping::Whole => Some(input.fields().filter(|field| !path_fields.contains(&field.name())).collect()),
        BodyMapping::Field(name) => {
            let field = input.get_field_by_name(name).expect("routes bind existing fields");
            operation.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "content": {"application/json": {"schema": schemas.field(&field)}},
                }),
            );
            None
        }
    };
    if let Some(fields) = body_fields {
        let properties: Map<String, Value> =
            fields.iter().map(|field| (field.json_name().to_string(), schemas.field(field))).collect();
        operation.insert(
            "requestBody".into(),
            json!({
                "required": false,
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": properties,
                    "additionalProperties": false,
                }}},
            }),
        );
    }
    let output = schemas.message(&method.output());
    let (status, content) = if method.is_server_streaming() {
        let description = format!(
            "Server-Sent Events: each `data:` is one {} as JSON; `id:` is the resume position (send it back \
             as `Last-Event-ID`); comments are heartbeats. `event: error` (data: the error JSON) ends the \
             stream on an error, `event: end` when it is over (e.g. the order finished): close the \
             EventSource then, or it reconnects. A browser's EventSource, which cannot set headers, may \
             pass its bearer token as `?access_token=`.",
            method.output().name()
        );
        ("200", json!({"text/event-stream": {"schema": {"type": "string", "description": description}}}))
    } else {
        let created = route.verb == crate::routes::Verb::Post && method.name().starts_with("Create");
        (if created { "201" } else { "200" }, json!({"application/json": {"schema": output}}))
    };
    operation.insert("operationId".into(), json!(format!("{}_{}", method.parent_service().name(), method.name())));
    operation.insert("tags".into(), json!([method.parent_service().name()]));
    operation.insert("summary".into(), json!(method.full_name()));
    operation.insert("parameters".into(), Value::Array(parameters));
    operation.insert(
        "responses".into(),
        json!({
            status: {"description": "the answer", "content": content},
            "default": error_response(),
        }),
    );
    Value::Object(operation)
}

/// `POST /api/v1/uploads`, the route with a handler of its own (see [`crate::upload`]).
fn upload_operation(upload: &Upload, schemas: &mut Schemas) -> Value {
    let parameters: Vec<Value> = upload
        .metadata()
        .fields()
        .filter(|field| !upload::HEADER_FIELDS.contains(&field.json_name()))
        .map(|field| {
            let required = matches!(field.name(), "target_kind" | "target_id");
            json!({"name": field.json_name(), "in": "query", "required": required, "schema": schemas.field(&field)})
        })
        .collect();
    let image = json!({"schema": {"type": "string", "format": "binary"}});
    let content: Map<String, Value> =
        upload::CONTENT_TYPES.iter().map(|kind| (kind.to_string(), image.clone())).collect();
    let method = upload.method();
    json!({
        "operationId": format!("{}_{}", method.parent_service().name(), method.name()),
        "tags": [method.parent_service().name()],
        "summary": method.full_name(),
        "description": "The body is the image; Content-Type and Content-Length are its type and exact size. \
                        Poll the job at Location (GetUploadJob) until it ends.",
        "parameters": parameters,
        "requestBody": {"required": true, "content": content},
        "responses": {
            "202": {
                "description": "every byte received: the job that processes the image",
                "headers": {"Location": {"description": "the job", "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": schemas.message(&method.output())}},
            },
            "default": error_response(),
        },
    })
}

fn error_response() -> Value {
    json!({
        "description": "an error: the gRPC code, a message a person can act on, google.rpc details",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

/// Fields a query string can fill: scalars, enums, lists of them, and
/// well-known types written as strings.
fn is_query_parameter(field: &FieldDescriptor) -> bool {
    match field.kind() {
        Kind::Message(message) => !field.is_map() && wkt_string(message.full_name()).is_some(),
        _ => true,
    }
}

/// The field `path` (dotted) of `message`.
fn nested_field(message: &MessageDescriptor, path: &str) -> Option<FieldDescriptor> {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let field = message.get_field_by_name(head)?;
    match (rest, field.kind()) {
        (None, _) => Some(field),
        (Some(rest), Kind::Message(inner)) => nested_field(&inner, rest),
        (Some(_), _) => None,
    }
}

/// The JSON string form of the well-known types that have one.
fn wkt_string(full_name: &str) -> Option<Value> {
    Some(match full_name {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"}),
        "google.protobuf.FieldMask" => json!({"type": "string"}),
        _ => return None,
    })
}

/// Component schemas, one per message reached, by full name.
#[derive(Default)]
struct Schemas {
    done: Map<String, Value>,
}

impl Schemas {
    /// A `$ref` to `message`'s schema, adding it (and what it reaches).
    fn message(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = wkt_string(message.full_name()) {
            return schema;
        }
        let name = message.full_name().to_string();
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        if self.done.contains_key(&name) {
            return reference;
        }
        self.done.insert(name.clone(), Value::Null); // placeholder: recursion stops here
        let properties: Map<String, Value> =
            message.fields().map(|field| (field.json_name().to_string(), self.field(&field))).collect();
        self.done.insert(name, json!({"type": "object", "properties": properties}));
        reference
    }

    fn field(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else { unreachable!("a map field is a message of entries") };
            let value = entry.map_entry_value_field();
            return json!({"type": "object", "additionalProperties": self.single(&value.kind())});
        }
        let single = self.single(&field.kind());
        if field.is_list() { json!({"type": "array", "items": single}) } else { single }
    }

    fn single(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double | Kind::Float => json!({"type": "number"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({"type": "integer", "format": "int32"}),
            Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int64", "minimum": 0}),
            // 64-bit integers are strings in the JSON mapping.
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({"type": "string", "pattern": "^-?[0-9]+$"}),
            Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "pattern": "^[0-9]+$"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "format": "byte"}),
            Kind::Enum(enumeration) => {
                json!({"type": "string", "enum": enumeration.values().map(|v| v.name().to_string()).collect::<Vec<_>>()})
            }
            Kind::Message(message) => self.message(message),
        }
    }
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "description": "the gRPC code, e.g. INVALID_ARGUMENT"},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        document(&RouteTable::from_descriptor_set(foodfast_api::FILE_DESCRIPTOR_SET).unwrap())
    }

    #[test]
    fn every_route_is_an_operation_with_its_parameters() {
        let table = RouteTable::from_descriptor_set(foodfast_api::FILE_DESCRIPTOR_SET).unwrap();
        let doc = document(&table);
        let operations: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(operations, table.routes().len() + 1, "every route, and the upload");

        let get_order = &doc["paths"]["/api/v1/orders/{order_id}"]["get"];
        assert_eq!(get_order["parameters"][0]["name"], "order_id");
        assert_eq!(get_order["parameters"][0]["in"], "path");
        assert_eq!(
            get_order["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/foodfast.v1.GetOrderResponse"
        );
        let search = &doc["paths"]["/api/v1/restaurants"]["get"]["parameters"];
        let names: Vec<&str> = search.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"radiusM") && names.contains(&"pageToken"), "{names:?}");
        let create = &doc["paths"]["/api/v1/orders"]["post"];
        assert!(create["responses"]["201"].is_object(), "CreateOrder answers 201");
        let track = &doc["paths"]["/api/v1/orders/{order_id}/track"]["get"]["responses"]["200"]["content"];
        assert!(track["text/event-stream"].is_object(), "streams are Server-Sent Events");
        let upload = &doc["paths"]["/api/v1/uploads"]["post"];
        let names: Vec<&str> =
            upload["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["targetKind", "targetId", "fileName", "sha256"], "the rest comes from the headers");
        assert!(upload["requestBody"]["content"]["image/png"].is_object());
        assert_eq!(
            upload["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/foodfast.v1.UploadImageResponse"
        );
    }

    #[test]
    fn schemas_follow_the_proto3_json_mapping() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let order = &schemas["foodfast.v1.Order"]["properties"];
        assert_eq!(order["lastEventSeq"]["type"], "string", "64-bit integers are strings");
        assert_eq!(order["status"]["enum"][0], "ORDER_STATUS_UNSPECIFIED");
        assert_eq!(order["createdAt"]["format"], "date-time");
        assert!(order["items"]["items"]["$ref"].is_string());
        assert!(
            schemas.as_object().unwrap().values().all(|schema| !schema.is_null()),
            "every reached schema is filled"
        );
    }
}
