//! The one function that assembles the gRPC server: limits, health,
//! reflection, every `foodfast.v1` service, and graceful shutdown.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use foodfast_payments::{HttpPaymentGateway, PaymentGateway};
use foodfast_store::Stores;
use foodfast_store::announcements::Announcements;
use foodfast_store::audit::AuditLog;
use foodfast_store::dispatch::Dispatch;
use foodfast_store::fanout::Fanout;
use foodfast_store::live::LivePositions;
use foodfast_store::notifications::Notifications;
use foodfast_store::orders::Orders;
use foodfast_store::restaurants::Restaurants;
use foodfast_store::support::Support;
use foodfast_store::throttle::{LoginThrottle, RateLimiter};
use foodfast_store::uploads::Uploads;
use foodfast_store::users::Users;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::admission::AdmissionLayer;
use crate::announcements::AnnouncementBoard;
use crate::api;
use crate::auth::Tokens;
use crate::config::{Config, GrpcConfig};
use crate::health;
use crate::settlement::PaymentSettler;

/// Serves on `listener` until `shutdown` resolves. Then health turns
/// NOT_SERVING, streams are told to end (through the cancellation token
/// handlers hold), and open calls get `grpc.shutdown_grace` to finish before
/// the server stops regardless.
pub async fn serve(
    config: &Config,
    stores: Stores,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    foodfast_store::tls::use_ring_by_default();
    let builder = server_builder(&config.grpc)?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    // NOT_SERVING until the first probe has seen the stores.
    health::publish_shutting_down(&reporter).await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(foodfast_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(foodfast_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let stopping = CancellationToken::new();
    let token_keys = config.auth.token_keys().map_err(anyhow::Error::msg)?;
    if token_keys.is_empty() {
        tracing::warn!("no FOODFAST_AUTH_KEYS configured: every bearer token is refused, only public calls work");
    }
    let tokens = Tokens::new(&token_keys);
    let payments: Arc<dyn PaymentGateway> = Arc::new(HttpPaymentGateway::new(config.payments.clone())?);
    let zones = Arc::new(config.ingest.zones.clone());
    let orders = Orders::new(stores.postgres.clone(), zones.clone());
    let fanout = Fanout::start(stores.redis.clone(), stopping.clone());
    let announcements = Announcements::new(stores.postgres.clone());
    let app = api::App {
        restaurants: Restaurants::new(stores.postgres.clone(), stores.redis.clone(), config.service.menu_cache_ttl),
        orders: orders.clone(),
        users: Users::new(stores.postgres.clone()),
        accounts: api::Accounts {
            tokens: tokens.clone(),
            config: Arc::new(config.auth.clone()),
            throttle: LoginThrottle::new(stores.redis.clone(), config.auth.login_throttle),
            hashing: Arc::new(tokio::sync::Semaphore::new(config.auth.max_concurrent_hashes)),
        },
        audit: AuditLog::new(stores.postgres.clone()),
        announcement_board: AnnouncementBoard::start(
            announcements.clone(),
            fanout.clone(),
            config.service.watch_poll_interval,
            stopping.clone(),
        ),
        announcements,
        notifications: Notifications::new(stores.postgres.clone()),
        support: Support::new(stores.postgres.clone(), stores.redis.clone()),
        uploads: Uploads::new(stores.postgres.clone(), stores.objects.clone()),
        media_nudge: Arc::default(),
        upload_permits: Arc::new(tokio::sync::Semaphore::new(config.media.max_concurrent_uploads)),
        media_config: Arc::new(config.media.clone()),
        notifier_nudge: Arc::default(),
        notification_backlog: Arc::default(),
        notifications_config: Arc::new(config.notifications.clone()),
        fanout,
        settler: PaymentSettler::start(
            orders,
            payments.clone(),
            config.service.payment_sweep_interval,
            stopping.clone(),
        ),
        payments,
        pricing: Arc::new(config.pricing.clone()),
        settings: Arc::new(config.service.clone()),
        order_rate: RateLimiter::new(stores.redis.clone(), "orders", config.service.order_rate),
        upload_rate: RateLimiter::new(stores.redis.clone(), "uploads", config.media.upload_rate),
        live: LivePositions::new(stores.redis.clone()),
        ingest: Arc::new(config.ingest.clone()),
        tracking: Arc::new(config.tracking.clone()),
        dispatch: Dispatch::new(stores.postgres.clone(), zones),
        dispatch_config: Arc::new(config.dispatch.clone()),
        scylla: stores.scylla.clone(),
        location_writer: Arc::default(),
        location_reader: Arc::default(),
        stopping: stopping.clone(),
    };
    let dispatcher = config.dispatch.enabled.then(|| tokio::spawn(crate::dispatcher::run(app.clone())));
    tokio::spawn(crate::unanswered::run(app.clone(), config.service.pending_order_timeout));
    tokio::spawn(crate::notifier::count_pending(
        app.notifications.clone(),
        app.notification_backlog.clone(),
        config.notifications.poll_interval,
        stopping.clone(),
    ));
    if config.media.workers > 0 {
        tokio::spawn(crate::media::run(
            app.uploads.clone(),
            app.restaurants.clone(),
            config.media.clone(),
            app.media_nudge.clone(),
            stopping.clone(),
        ));
    }
    if config.notifications.provider_url.is_empty() {
        tracing::info!("notifications.provider_url is not set: notifications are queued, not sent, by this replica");
    } else {
        tokio::spawn(crate::notifier::run(
            app.notifications.clone(),
            config.notifications.clone(),
            app.notifier_nudge.clone(),
            stopping.clone(),
        ));
    }
    let health_task =
        tokio::spawn(health::watch_stores(stores.clone(), reporter.clone(), config.health.clone(), stopping.clone()));

    let grpc = &config.grpc;
    let router = builder
        .layer(crate::telemetry::grpc_layer())
        .layer(AdmissionLayer::new(
            grpc.max_calls_in_flight,
            grpc.max_open_streams,
            &crate::telemetry::served_methods(),
        ))
        .max_concurrent_streams(Some(grpc.max_concurrent_streams))
        .initial_connection_window_size(Some(grpc.connection_window_bytes))
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let router = api::add_services(router, app, &tokens, grpc.max_message_bytes);

    let local_addr = listener.local_addr()?;
    tracing::info!(%local_addr, tls = grpc.tls_cert.is_some(), "foodfast gRPC server listening");

    let drain = {
        let stopping = stopping.clone();
        let reporter = reporter.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: draining open calls and streams");
            stopping.cancel();
            health::publish_shutting_down(&reporter).await;
        }
    };
    // Accepted sockets get TCP_NODELAY here: the builder's `tcp_nodelay` only
    // applies to listeners tonic binds itself, and Nagle's algorithm with
    // delayed ACKs adds up to 40 ms to a lone small call.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let incoming = crate::admission::limit_connections(incoming, grpc.max_connections);
    let server = router.serve_with_incoming_shutdown(incoming, drain);
    let grace = grpc.shutdown_grace;
    tokio::select! {
        result = server => result?,
        _ = async { stopping.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "shutdown grace expired with calls still open; stopping anyway");
        }
    }
    stopping.cancel();
    health_task.await?;
    if let Some(dispatcher) = dispatcher {
        dispatcher.await?;
    }
    tracing::info!("foodfast gRPC server stopped");
    Ok(())
}

/// A server builder, serving TLS with the identity in `grpc.tls_cert` and
/// `grpc.tls_key` when they are set. The files are read and parsed now, so
/// that a missing or malformed one stops start-up naming it.
fn server_builder(grpc: &GrpcConfig) -> anyhow::Result<Server> {
    let (Some(cert_path), Some(key_path)) = (&grpc.tls_cert, &grpc.tls_key) else {
        return Ok(Server::builder());
    };
    let read = |what: &str, path: &Path| {
        std::fs::read(path).with_context(|| format!("reading the TLS {what} {}", path.display()))
    };
    let cert = read("certificate", cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("TLS certificate {}: not PEM", cert_path.display()))?;
    if chain.is_empty() {
        anyhow::bail!("TLS certificate {}: no PEM CERTIFICATE in it", cert_path.display());
    }
    let key = read("key", key_path)?;
    PrivateKeyDer::from_pem_slice(&key)
        .with_context(|| format!("TLS key {}: no PEM private key in it", key_path.display()))?;
    Server::builder()
        .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
        .with_context(|| format!("TLS certificate {} with key {}", cert_path.display(), key_path.display()))
}

/// Listens for SIGTERM and SIGINT from now on; the returned future resolves
/// on the first of them. Call it before anything slow, so that a signal
/// during start-up also ends the process cleanly.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("received SIGTERM"),
            _ = interrupt.recv() => tracing::info!("received SIGINT"),
        }
    })
}
