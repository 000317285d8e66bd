//! `orders`: CreateOrder at a fixed rate against the real server, started in
//! this process on a fresh database with the payment sandbox as its provider;
//! then, on the same database, pool, rate and concurrency, a bare single-row
//! INSERT: the floor any order placement stands on.

use std::sync::Arc;

use anyhow::Context;
use clap::builder::RangedU64ValueParser;
use foodfast_api::v1 as pb;
use foodfast_api::v1::order_service_client::OrderServiceClient;
use foodfast_api::v1::restaurant_service_client::RestaurantServiceClient;
use foodfast_domain::access::Role;
use foodfast_store::postgres::Postgres;
use tonic::metadata::{Ascii, MetadataValue};
use uuid::Uuid;

use crate::in_process::{InProcessServer, discard, human};
use crate::open_loop::{self, Load, Outcome};
use crate::report;

/// Where the seeded restaurants are (Paris), spread over a few kilometres.
const CITY: (f64, f64) = (48.8566, 2.3522);
const CREATE_BASELINE_TABLE: &str = "CREATE TABLE bench_baseline (id UUID PRIMARY KEY, payload TEXT NOT NULL, \
     created_at TIMESTAMPTZ NOT NULL DEFAULT now())";
const INSERT_BASELINE: &str = "INSERT INTO bench_baseline (id, payload) VALUES ($1, $2)";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    load: Load,
    /// Restaurants seeded; each order goes to one of them at random.
    #[arg(long, default_value_t = 50, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    restaurants: usize,
    /// Customers seeded; each order comes from one of them at random.
    #[arg(long, default_value_t = 500, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    customers: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let load = &args.load;
    let machine = report::machine();
    let server = InProcessServer::start().await?;
    eprintln!("seeding {} restaurants and {} customers", args.restaurants, args.customers);
    let market = Arc::new(Market::seed(&server, args.restaurants, args.customers).await?);

    eprintln!("CreateOrder at {}/s: {} warm-up, then {} measured", load.rate, human(load.warmup), human(load.duration));
    let client = OrderServiceClient::new(server.channel.clone());
    let create_order = open_loop::run(load, || {
        let request = market.order_request();
        let mut client = client.clone();
        async move { client.create_order(request).await.map(drop).map_err(|status| format!("{:?}", status.code())) }
    })
    .await;

    let database_url = server.config.stores.postgres.url.clone();
    let pool_size = server.config.stores.postgres.max_connections;
    let stores = server.stop().await?;
    eprintln!("bare INSERT at {}/s on the same database and pool", load.rate);
    let insert = bare_insert(&stores.postgres, load).await?;
    discard(stores, &database_url).await?;

    println!("{machine}");
    println!(
        "settings: rate {}/s, warm-up {}, duration {}, concurrency {}, {} restaurants, {} customers, \
         PostgreSQL pool {pool_size}, one process (server, payment sandbox, load)",
        load.rate,
        human(load.warmup),
        human(load.duration),
        load.concurrency,
        args.restaurants,
        args.customers,
    );
    report::print_table(load.rate, &[("CreateOrder", &create_order), ("bare INSERT", &insert)]);
    report::print_ratios(("CreateOrder", &create_order), ("bare INSERT", &insert));
    let p99_ms = create_order.latency.value_at_quantile(0.99) as f64 / 1000.0;
    let verdict = if !create_order.errors.is_empty() {
        "MISSED (calls failed)"
    } else if create_order.throughput() < 0.99 * f64::from(load.rate) {
        "MISSED (fell behind the rate)"
    } else if p99_ms >= 50.0 {
        "MISSED"
    } else if load.rate < 500 {
        "under 50 ms, but below the target rate"
    } else {
        "met"
    };
    println!("DESIGN target CreateOrder p99 < 50 ms at 500/s: p99 {p99_ms:.2} ms at {}/s, {verdict}", load.rate);
    Ok(())
}

/// What the orders are placed with: restaurants with their stored menus, and
/// the customers' bearer headers.
pub(crate) struct Market {
    restaurants: Vec<SeededRestaurant>,
    customers: Vec<MetadataValue<Ascii>>,
}

struct SeededRestaurant {
    id: String,
    location: (f64, f64),
    /// Every item on the menu, as stored (with its ids).
    dishes: Vec<pb::MenuItem>,
}

impl Market {
    /// Restaurants through the RestaurantService as an admin, customers
    /// straight into the users table.
    pub(crate) async fn seed(server: &InProcessServer, restaurants: usize, customers: usize) -> anyhow::Result<Self> {
        let admin = server.account(Role::Admin, Role::Admin).await?;
        let mut client = RestaurantServiceClient::new(server.channel.clone());
        let mut seeded = Vec::with_capacity(restaurants);
        for i in 0..restaurants {
            // A grid with about 1 km between neighbours.
            let location = (CITY.0 + (i % 10) as f64 * 0.009, CITY.1 + (i / 10) as f64 * 0.013);
            let mut create = tonic::Request::new(pb::CreateRestaurantRequest {
                profile: Some(profile(&format!("Loadgen Pizzeria {i}"), location)),
            });
            create.metadata_mut().insert("authorization", admin.clone());
            let restaurant =
                client.create_restaurant(create).await?.into_inner().restaurant.context("no restaurant in answer")?;
            let mut upsert = tonic::Request::new(pb::UpsertMenuRequest {
                restaurant_id: restaurant.restaurant_id.clone(),
                categories: menu(),
                expected_menu_version: String::new(),
            });
            upsert.metadata_mut().insert("authorization", admin.clone());
            let stored = client.upsert_menu(upsert).await?.into_inner();
            let dishes = stored.categories.into_iter().flat_map(|category| category.items).collect();
            seeded.push(SeededRestaurant { id: restaurant.restaurant_id, location, dishes });
        }
        let mut bearers = Vec::with_capacity(customers);
        for _ in 0..customers {
            bearers.push(server.account(Role::Customer, Role::Customer).await?);
        }
        Ok(Self { restaurants: seeded, customers: bearers })
    }

    /// The seeded restaurants' ids.
    pub(crate) fn restaurant_ids(&self) -> impl Iterator<Item = &str> {
        self.restaurants.iter().map(|restaurant| restaurant.id.as_str())
    }

    /// Where the seeded restaurants are.
    pub(crate) fn restaurant_locations(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.restaurants.iter().map(|restaurant| restaurant.location)
    }

    /// A new order (its own idempotency key) from a random customer at a
    /// random restaurant: one to three different dishes, delivered within
    /// about 2 km.
    pub(crate) fn order_request(&self) -> tonic::Request<pb::CreateOrderRequest> {
        let restaurant = &self.restaurants[fastrand::usize(..self.restaurants.len())];
        let mut dishes: Vec<&pb::MenuItem> = restaurant.dishes.iter().collect();
        fastrand::shuffle(&mut dishes);
        let lines = fastrand::usize(1..=3).min(dishes.len());
        let (lat, lng) = restaurant.location;
        let mut request = tonic::Request::new(pb::CreateOrderRequest {
            idempotency_key: Uuid::new_v4().to_string(),
            restaurant_id: restaurant.id.clone(),
            items: dishes[..lines].iter().map(|dish| cart_line(dish)).collect(),
            delivery_address: Some(pb::Address {
                location: Some(pb::LatLng { lat: lat + fastrand::f64() * 0.018, lng }),
                formatted: "2 Customer Road".into(),
                instructions: String::new(),
            }),
            payment_method_id: "pm_card_visa".into(),
            customer_note: String::new(),
        });
        let customer = &self.customers[fastrand::usize(..self.customers.len())];
        request.metadata_mut().insert("authorization", customer.clone());
        request
    }
}

/// One to three of `dish`, with a random option for each customization
/// that needs one (the seeded menu has only single-choice ones).
fn cart_line(dish: &pb::MenuItem) -> pb::CartItem {
    let customizations = dish
        .customizations
        .iter()
        .filter(|customization| customization.min_choices > 0)
        .map(|customization| pb::CustomizationChoice {
            customization_id: customization.customization_id.clone(),
            option_ids: vec![customization.options[fastrand::usize(..customization.options.len())].option_id.clone()],
        })
        .collect();
    pb::CartItem { item_id: dish.item_id.clone(), quantity: fastrand::u32(1..=3), customizations, note: String::new() }
}

/// Open around the clock, delivering within 8 km.
fn profile(name: &str, (lat, lng): (f64, f64)) -> pb::RestaurantProfile {
    pb::RestaurantProfile {
        name: name.into(),
        address: Some(pb::Address {
            location: Some(pb::LatLng { lat, lng }),
            formatted: format!("{name}, 1 Benchmark Street"),
            instructions: String::new(),
        }),
        cuisines: vec!["pizza".into()],
        phone: "+3312345678".into(),
        time_zone: "Europe/Paris".into(),
        opening_hours: (1..=7)
            .map(|day| pb::OpeningPeriod { day, opens_at: "00:00".into(), closes_at: "00:00".into() })
            .collect(),
        delivery_radius_m: 8_000,
        average_prep_time: Some(prost_types::Duration { seconds: 900, nanos: 0 }),
        currency_code: "EUR".into(),
        paused: false,
    }
}

/// Five available dishes in three categories; the pizzas need a size.
fn menu() -> Vec<pb::MenuCategory> {
    let size = || pb::Customization {
        customization_id: String::new(),
        name: "Size".into(),
        min_choices: 1,
        max_choices: 1,
        options: vec![option("Regular", "0"), option("Large", "3.00")],
    };
    vec![
        category("Pizza", vec![dish("Margherita", "9.50", vec![size()]), dish("Diavola", "11.00", vec![size()])]),
        category("Starters", vec![dish("Bruschetta", "5.00", vec![]), dish("Green salad", "6.50", vec![])]),
        category("Drinks", vec![dish("Lemonade", "3.00", vec![])]),
    ]
}

fn category(name: &str, items: Vec<pb::MenuItem>) -> pb::MenuCategory {
    pb::MenuCategory { category_id: String::new(), name: name.into(), items }
}

fn dish(name: &str, price: &str, customizations: Vec<pb::Customization>) -> pb::MenuItem {
    pb::MenuItem {
        item_id: String::new(),
        name: name.into(),
        description: String::new(),
        price: Some(euros(price)),
        available: true,
        image_url: String::new(),
        customizations,
    }
}

fn option(name: &str, surcharge: &str) -> pb::CustomizationOption {
    pb::CustomizationOption {
        option_id: String::new(),
        name: name.into(),
        surcharge: Some(euros(surcharge)),
        available: true,
    }
}

fn euros(amount: &str) -> pb::Money {
    pb::Money { currency_code: "EUR".into(), amount: amount.into() }
}

/// The baseline: autocommit `INSERT`s of one row, each a prepared statement
/// on a connection from `postgres`, the pool the server used.
async fn bare_insert(postgres: &Postgres, load: &Load) -> anyhow::Result<Outcome> {
    postgres.client().await?.batch_execute(CREATE_BASELINE_TABLE).await?;
    let postgres = postgres.clone();
    Ok(open_loop::run(load, move || {
        let postgres = postgres.clone();
        async move {
            let client = postgres.client().await.map_err(|_| "pool".to_string())?;
            let inserted = async {
                let insert = client.prepare_cached(INSERT_BASELINE).await?;
                client.execute(&insert, &[&Uuid::new_v4(), &"one bare row"]).await
            }
            .await;
            inserted.map(drop).map_err(|err| {
                err.code().map_or_else(|| "connection".into(), |code| format!("SQLSTATE {}", code.code()))
            })
        }
    })
    .await)
}
