//! Traces end to end: the server and the gateway run as their own
//! processes, exporting to an OTLP receiver this test runs. One order placed
//! through the gateway makes one trace: the gateway's request span, the
//! server's RPC span under it (the trace context travelled in the gRPC
//! metadata), and store spans under that.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Kitchen, Stack};
use foodfast_domain::access::Role;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A span as the receiver got it, with the service that sent it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

/// The collector's side of OTLP/gRPC, keeping every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<ReceivedSpan>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| match attribute.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|scope| scope.spans) {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_through_the_gateway_is_one_trace_from_gateway_to_store() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let stack = Stack::start_processes(&[
        ("FOODFAST_OTLP_ENDPOINT", endpoint.clone()),
        ("FOODFAST_GATEWAY_OTLP_ENDPOINT", endpoint),
        // Export every 100 ms instead of every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ])
    .await;
    let admin = stack.user(Role::Admin, None).await;
    let customer = stack.user(Role::Customer, None).await;
    let Kitchen { restaurant_id, item_id, .. } = stack.kitchen(&admin).await;
    let order = json!({
        "restaurantId": restaurant_id,
        "items": [{"itemId": item_id, "quantity": 1}],
        "deliveryAddress": {"location": {"lat": 48.86, "lng": 2.3522}, "formatted": "2 Rue du Client"},
        "paymentMethodId": "pm_card_visa",
        "idempotencyKey": uuid::Uuid::new_v4().to_string(),
    });
    let (status, placed) = stack.call(Method::POST, "/api/v1/orders", Some(&customer), Some(order)).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (gateway_span, trace) = loop {
        let spans = receiver.0.lock().unwrap().clone();
        let placing = spans.iter().find(|s| s.service == "foodfast-gateway" && s.name == "POST /api/v1/orders");
        if let Some(placing) = placing {
            let trace: Vec<ReceivedSpan> = spans.iter().filter(|s| s.trace_id == placing.trace_id).cloned().collect();
            let stored = trace.iter().any(|s| s.name == "Orders.place");
            if stored {
                break (placing.clone(), trace);
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no complete trace of the order arrived: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let rpc = trace
        .iter()
        .find(|s| s.name == "foodfast.v1.OrderService/CreateOrder")
        .unwrap_or_else(|| panic!("no CreateOrder span in the trace: {trace:#?}"));
    assert_eq!(rpc.service, "foodfast-server");
    assert_eq!(rpc.parent_span_id, gateway_span.span_id, "the server's span continues the gateway's: {trace:#?}");
    assert!(gateway_span.parent_span_id.is_empty(), "the gateway's span starts the trace");

    // Every store span of the trace hangs, through its parents, from the RPC span.
    let by_id: HashMap<&[u8], &ReceivedSpan> = trace.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let under_rpc = |span: &ReceivedSpan| {
        let mut parent = span.parent_span_id.as_slice();
        while let Some(up) = by_id.get(parent) {
            if up.span_id == rpc.span_id {
                return true;
            }
            parent = up.parent_span_id.as_slice();
        }
        false
    };
    let place = trace.iter().find(|s| s.name == "Orders.place").unwrap();
    assert_eq!(place.service, "foodfast-server");
    assert!(under_rpc(place), "Orders.place is not under the RPC span: {trace:#?}");
    let stores: Vec<&str> = trace
        .iter()
        .filter(|s| s.name.contains('.') && s.service == "foodfast-server" && under_rpc(s))
        .map(|s| s.name.as_str())
        .collect();
    assert!(stores.len() >= 2, "the order's store calls (claim, place, ...) are all in the trace: {stores:?}");
}
