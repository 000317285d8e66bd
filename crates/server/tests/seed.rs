//! `foodfast seed` fills a demo city once, and what it makes is usable.

use std::time::Duration;

use foodfast_domain::geo::LatLng;
use foodfast_server::seed::{DEMO_PASSWORD, SeedPlan, seed};
use foodfast_store::restaurants::{Restaurants, SearchQuery};
use foodfast_store::users::Users;
use foodfast_store::{Stores, migrate};

#[tokio::test]
async fn seeding_twice_creates_one_searchable_city() {
    let config = foodfast_testkit::fresh_stores().await;
    let stores = Stores::connect(&config).await.unwrap();
    migrate::migrate_postgres(&stores.postgres, &migrate::cockroach_migrations()).await.unwrap();
    let center = LatLng::new(48.8566, 2.3522).unwrap();
    let plan = SeedPlan { city: "Paris".into(), center, restaurants: 6, customers: 3, drivers: 2, spread_m: 4_000.0 };

    let first = seed(&stores, &plan, Duration::from_secs(60)).await.unwrap();
    assert!(first.created);
    assert_eq!((first.restaurants.len(), first.customers.len(), first.drivers.len()), (6, 3, 2));
    let users = Users::new(stores.postgres.clone());
    for email in ["admin@demo.foodfast", "staff6@demo.foodfast", "customer3@demo.foodfast", "driver2@demo.foodfast"] {
        let account = users.account_by_email(email).await.unwrap().expect(email);
        assert!(
            foodfast_auth::password::verify(&account.password_hash, DEMO_PASSWORD),
            "{email} signs in with the demo password"
        );
    }
    let second = seed(&stores, &plan, Duration::from_secs(60)).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.admin, first.admin);

    let restaurants = Restaurants::new(stores.postgres.clone(), stores.redis.clone(), Duration::from_secs(60));
    let query = SearchQuery { center, radius_m: 5_000, cuisine: None, open_at: None, after: None, limit: 100 };
    let hits = restaurants.search(&query).await.unwrap();
    assert_eq!(hits.len(), 6, "every seeded restaurant is within 5 km of the center");
    for (restaurant_id, _staff) in &first.restaurants {
        let menu = restaurants.menu(*restaurant_id).await.unwrap().unwrap();
        assert!(menu.menu.validate().is_ok());
        assert!(menu.menu.categories.iter().map(|c| c.items.len()).sum::<usize>() >= 4);
    }
}
