//! `gateway`: what the REST gateway costs a read (issue 6). The real server
//! runs in this process on fresh stores with the gateway in front of it, as
//! `foodfast-gateway` serves it (checking tokens with the server's keys, as
//! `make run` sets it up) but with rate limits too high to refuse any call;
//! one restaurant, one customer and one order are placed through the
//! API. Then, with the same number of callers each calling again as soon as
//! its answer came (closed loop), the same order is read (a) directly over
//! gRPC with the generated client on one shared HTTP/2 channel, as a native
//! app would, and (b) as `GET /api/v1/orders/{id}` through the gateway, from
//! an HTTP/1.1 keep-alive pool with the customer's bearer token, each answer
//! checked for 200 and the order's id.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::builder::RangedU64ValueParser;
use foodfast_api::v1 as pb;
use foodfast_api::v1::order_service_client::OrderServiceClient;
use foodfast_gateway::config::{GatewayConfig, LimitsConfig};
use foodfast_gateway::rest::{self, GatewayError};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::in_process::{InProcessServer, human};
use crate::open_loop::{self, Load};
use crate::report;

/// Every rate limit of the gateway, per second and burst: far above what two
/// cores can serve, so that the limiter counts but never refuses.
const GENEROUS_RATE: u32 = 1_000_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Callers, each with one call in flight: gRPC calls on one shared HTTP/2
    /// channel, REST calls on as many HTTP/1.1 keep-alive connections.
    #[arg(long, default_value_t = 32, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    concurrency: usize,
    /// How long each measured part runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Calls before each measured part, not recorded.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let machine = report::machine();
    // Closed loop: the rate is not used (0 prints as `max`).
    let load = Load { rate: 0, duration: args.duration, warmup: args.warmup, concurrency: args.concurrency };
    let server = InProcessServer::start().await?;
    eprintln!("placing one order (one restaurant, one customer) through the API");
    let (order_id, customer) = place_order(&server).await?;
    let gateway = InProcessGateway::start(gateway_config(&server.url, &server.config.auth.keys)).await?;
    let http =
        reqwest::Client::builder().http1_only().tcp_nodelay(true).pool_max_idle_per_host(args.concurrency).build()?;
    let url = format!("{}/api/v1/orders/{order_id}", gateway.base);
    let bearer = customer.to_str()?.to_string();
    if let Err(kind) = get_over_rest(&http, &url, &bearer, &order_id).await {
        if gateway.task.is_finished() {
            // It could not start: its error says why.
            gateway.stop().await?;
        }
        anyhow::bail!("GET {url}: {kind}");
    }

    let plan =
        format!("{} callers, {} warm-up, {} measured", args.concurrency, human(args.warmup), human(args.duration));
    eprintln!("(a) GetOrder over gRPC, directly to the server: {plan}");
    let direct = {
        let client = OrderServiceClient::new(server.channel.clone());
        let (order_id, customer) = (order_id.clone(), customer.clone());
        open_loop::run_closed(&load, move || get_over_grpc(client.clone(), order_id.clone(), customer.clone())).await
    };
    eprintln!("(b) GET /api/v1/orders/{{id}} through the gateway: {plan}");
    let through_gateway = {
        let shared = Arc::new((http, url, bearer, order_id));
        open_loop::run_closed(&load, move || {
            let shared = shared.clone();
            async move {
                let (http, url, bearer, order_id) = &*shared;
                get_over_rest(http, url, bearer, order_id).await
            }
        })
        .await
    };
    let peak_rss = report::peak_rss();

    gateway.stop().await?;
    server.stop_and_discard().await?;

    println!("{machine}");
    println!(
        "settings: closed loop, {} callers, warm-up {}, duration {}; (a) generated tonic client, one HTTP/2 \
         connection; (b) reqwest, HTTP/1.1 keep-alive, up to {} connections, bearer token, each answer parsed \
         and checked for 200 and the order id; the gateway checks tokens and reaches the server on one HTTP/2 \
         connection of its own; one process (server, gateway, payment sandbox, load); peak RSS {peak_rss}",
        args.concurrency,
        human(args.warmup),
        human(args.duration),
        args.concurrency,
    );
    report::print_table(0, &[("(a) gRPC", &direct), ("(b) REST", &through_gateway)]);
    println!("latency: from a call's start to its answer read (and, for (b), its JSON parsed)");
    report::print_ratios(("(b) REST", &through_gateway), ("(a) gRPC", &direct));
    Ok(())
}

/// Seeds one restaurant with its menu and one customer, and places one
/// order as that customer: its id and the customer's bearer header.
async fn place_order(server: &InProcessServer) -> anyhow::Result<(String, MetadataValue<Ascii>)> {
    let market = crate::orders::Market::seed(server, 1, 1).await?;
    let request = market.order_request();
    let customer = request.metadata().get("authorization").context("an order request without a bearer")?.clone();
    let order = OrderServiceClient::new(server.channel.clone())
        .create_order(request)
        .await
        .context("CreateOrder")?
        .into_inner()
        .order
        .context("CreateOrder answered no order")?;
    Ok((order.order_id, customer))
}

/// One `OrderService/GetOrder` as `customer`; `Err(kind)` unless it answers
/// the order asked for.
async fn get_over_grpc(
    mut client: OrderServiceClient<Channel>,
    order_id: String,
    customer: MetadataValue<Ascii>,
) -> Result<(), String> {
    let mut request = tonic::Request::new(pb::GetOrderRequest { order_id: order_id.clone() });
    request.metadata_mut().insert("authorization", customer);
    let response = client.get_order(request).await.map_err(|status| format!("{:?}", status.code()))?;
    match response.into_inner().order {
        Some(order) if order.order_id == order_id => Ok(()),
        Some(_) => Err("wrong order".into()),
        None => Err("no order".into()),
    }
}

/// One `GET url` with `bearer` as the Authorization header; `Err(kind)`
/// unless it answers 200 with the order `order_id` in JSON.
async fn get_over_rest(http: &reqwest::Client, url: &str, bearer: &str, order_id: &str) -> Result<(), String> {
    let response = http
        .get(url)
        .header(reqwest::header::AUTHORIZATION, bearer)
        .send()
        .await
        .map_err(|err| if err.is_connect() { "connect".to_string() } else { "request".to_string() })?;
    let status = response.status();
    let body = response.bytes().await.map_err(|_| "body".to_string())?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| "not JSON".to_string())?;
    match json.pointer("/order/orderId").and_then(serde_json::Value::as_str) {
        Some(id) if id == order_id => Ok(()),
        Some(_) => Err("wrong order".into()),
        None => Err("no order".into()),
    }
}

/// The gateway's configuration: `foodfast-gateway`'s defaults, in front of
/// the server at `upstream_url`, checking tokens with the server's `keys`
/// (as `make run` sets it up), with [`generous_limits`]. The one place the
/// benchmark configures the gateway.
fn gateway_config(upstream_url: &str, keys: &[String]) -> GatewayConfig {
    let mut config = GatewayConfig::default();
    config.upstream.url = upstream_url.to_string();
    config.auth.keys = keys.to_vec();
    config.limits = generous_limits();
    config
}

/// Limits no run of this benchmark reaches: it measures the gateway, not
/// its limiter refusing calls.
fn generous_limits() -> LimitsConfig {
    let rate = NonZeroU32::new(GENEROUS_RATE).expect("a positive rate");
    LimitsConfig {
        per_ip_per_second: rate,
        per_caller_per_second: rate,
        burst_seconds: NonZeroU32::MIN,
        orders_per_minute: rate,
        orders_burst: rate,
        max_in_flight_per_ip: rate,
    }
}

/// The gateway served on a loopback port of its own until stopped.
struct InProcessGateway {
    /// `http://127.0.0.1:PORT`.
    base: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), GatewayError>>,
}

impl InProcessGateway {
    /// Starts the gateway configured by `config` on a loopback port; it
    /// reaches the server on an HTTP/2 connection of its own (not the
    /// direct callers').
    async fn start(config: GatewayConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            rest::serve(&config, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Self { base, stop, task })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}
