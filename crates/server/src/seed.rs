//! `foodfast seed`: a demo city — restaurants with menus around a center,
//! their staff, customers, drivers and an admin — so `make run` has something
//! to show. Accounts have fixed emails (`customer3@demo.foodfast`, ...) and
//! one published password, [`DEMO_PASSWORD`]: a demo, never a real city. A
//! second run finds the admin and changes nothing.

use foodfast_domain::access::Role;
use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use foodfast_domain::address::Address;
use foodfast_domain::geo::LatLng;
use foodfast_domain::hours::{OpeningHours, OpeningPeriod};
use foodfast_domain::menu::{Customization, CustomizationOption, Menu, MenuCategory, MenuItem};
use foodfast_domain::money::Currency;
use foodfast_domain::restaurant::RestaurantProfile;
use foodfast_store::Stores;
use foodfast_store::restaurants::Restaurants;
use foodfast_store::users::{NewUser, Users};
use rust_decimal::Decimal;
use uuid::Uuid;

/// What to create.
#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub city: String,
    pub center: LatLng,
    pub restaurants: usize,
    pub customers: usize,
    pub drivers: usize,
    /// Restaurants are spread over a square this many meters wide.
    pub spread_m: f64,
}

/// What a seed run produced (or found).
#[derive(Debug, Clone)]
pub struct Seeded {
    pub created: bool,
    pub admin: Uuid,
    pub restaurants: Vec<(Uuid, Uuid)>,
    pub customers: Vec<Uuid>,
    pub drivers: Vec<Uuid>,
}

const ADMIN_EMAIL: &str = "admin@demo.foodfast";
/// Every seeded account's password (the README says so).
pub const DEMO_PASSWORD: &str = "foodfast-demo";
const CUISINES: [&str; 8] = ["pizza", "sushi", "burgers", "thai", "indian", "mexican", "salads", "bakery"];
const NAMES: [&str; 8] = ["Nonna", "Koi", "Patty", "Lotus", "Masala", "Cactus", "Greens", "Crumb"];

pub async fn seed(stores: &Stores, plan: &SeedPlan, menu_cache_ttl: Duration) -> anyhow::Result<Seeded> {
    let users = Users::new(stores.postgres.clone());
    if let Some((admin, _, _)) = users.by_email(ADMIN_EMAIL).await? {
        return Ok(Seeded { created: false, admin, restaurants: vec![], customers: vec![], drivers: vec![] });
    }
    let restaurants = Restaurants::new(stores.postgres.clone(), stores.redis.clone(), menu_cache_ttl);
    let mut rng = fastrand::Rng::with_seed(7);
    // One hash for every account: argon2 is slow on purpose.
    let password_hash = &foodfast_auth::password::hash(DEMO_PASSWORD);
    let account = |email: String, name: String, role: Role, restaurant_id: Option<Uuid>| {
        let users = &users;
        async move {
            let account = NewUser { email: &email, phone: None, name: &name, role, password_hash, restaurant_id };
            anyhow::Ok(users.create(&account).await?)
        }
    };
    let admin = account(ADMIN_EMAIL.into(), "Demo Admin".into(), Role::Admin, None).await?;

    let mut seeded_restaurants = Vec::with_capacity(plan.restaurants);
    for i in 0..plan.restaurants {
        let cuisine = CUISINES[i % CUISINES.len()];
        let location = offset(plan.center, plan.spread_m, &mut rng)?;
        let profile = RestaurantProfile {
            name: format!("{} {}", NAMES[i % NAMES.len()], i + 1),
            phone: format!("+3310000{:02}{:02}", i / 100, i % 100),
            address: Address {
                location,
                formatted: format!("{} Rue de la Démo, {}", i + 1, plan.city),
                instructions: String::new(),
            },
            cuisines: vec![cuisine.to_string()],
            time_zone: chrono_tz::Europe::Paris,
            opening_hours: always_open(),
            delivery_radius_m: 6_000,
            prep_time: Duration::from_secs(60 * (10 + rng.u64(0..20))),
            currency: Currency::new("EUR")?,
            paused: false,
        };
        let restaurant = restaurants.create(&profile).await?;
        restaurants.upsert_menu(restaurant.id, &demo_menu(cuisine, &mut rng), None).await?;
        let staff = account(
            format!("staff{}@demo.foodfast", i + 1),
            format!("Staff of {}", profile.name),
            Role::RestaurantStaff,
            Some(restaurant.id),
        )
        .await?;
        seeded_restaurants.push((restaurant.id, staff));
    }
    let mut customers = Vec::with_capacity(plan.customers);
    for i in 0..plan.customers {
        let email = format!("customer{}@demo.foodfast", i + 1);
        customers.push(account(email, format!("Customer {}", i + 1), Role::Customer, None).await?);
    }
    let mut drivers = Vec::with_capacity(plan.drivers);
    for i in 0..plan.drivers {
        let email = format!("driver{}@demo.foodfast", i + 1);
        let driver = account(email, format!("Driver {}", i + 1), Role::Driver, None).await?;
        let vehicle = if i % 3 == 0 { "car" } else { "bike" };
        users.add_driver(driver, &plan.city, vehicle, 1).await?;
        drivers.push(driver);
    }
    Ok(Seeded { created: true, admin, restaurants: seeded_restaurants, customers, drivers })
}

/// A point uniformly inside the square of side `spread_m` around `center`.
fn offset(center: LatLng, spread_m: f64, rng: &mut fastrand::Rng) -> anyhow::Result<LatLng> {
    let meters_per_degree = 111_195.0;
    let north = (rng.f64() - 0.5) * spread_m;
    let east = (rng.f64() - 0.5) * spread_m;
    let lat = center.lat + north / meters_per_degree;
    let lng = center.lng + east / (meters_per_degree * center.lat.to_radians().cos());
    Ok(LatLng::new(lat, lng)?)
}

fn always_open() -> OpeningHours {
    let midnight = NaiveTime::MIN;
    let days = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
    OpeningHours(days.into_iter().map(|day| OpeningPeriod { day, opens: midnight, closes: midnight }).collect())
}

fn price(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

fn option(name: &str, cents: i64) -> CustomizationOption {
    CustomizationOption { id: Uuid::new_v4(), name: name.into(), surcharge: price(cents), available: true }
}

/// Fresh ids on every call: ids are unique across a whole menu.
fn customizations() -> Vec<Customization> {
    vec![
        Customization {
            id: Uuid::new_v4(),
            name: "Size".into(),
            min_choices: 1,
            max_choices: 1,
            options: vec![option("Regular", 0), option("Large", 300)],
        },
        Customization {
            id: Uuid::new_v4(),
            name: "Extras".into(),
            min_choices: 0,
            max_choices: 2,
            options: vec![option("Extra sauce", 50), option("Extra cheese", 150)],
        },
    ]
}

fn demo_menu(cuisine: &str, rng: &mut fastrand::Rng) -> Menu {
    let mut item = |name: String, cents: i64, customizations: Vec<Customization>| MenuItem {
        id: Uuid::new_v4(),
        name,
        description: format!("House {cuisine} speciality"),
        price: price(cents + rng.i64(0..300)),
        available: true,
        image_url: None,
        customizations,
    };
    Menu {
        categories: vec![
            MenuCategory {
                id: Uuid::new_v4(),
                name: "Mains".into(),
                items: (1..=4).map(|n| item(format!("{cuisine} main {n}"), 900, customizations())).collect(),
            },
            MenuCategory {
                id: Uuid::new_v4(),
                name: "Sides & drinks".into(),
                items: vec![item("Side salad".into(), 350, vec![]), item("Lemonade".into(), 250, vec![])],
            },
        ],
    }
}
