//! Restaurants, search and menus against the real PostgreSQL and Redis.

mod common;

use common::{TestServer, demo_menu, profile};
use foodfast_api::v1 as pb;
use foodfast_testkit::PrivateRedis;
use tonic::Code;
use tonic_types::StatusExt;

const LAT: f64 = 48.8566;
const LNG: f64 = 2.3522;
/// Meters per degree of latitude.
const M_PER_DEG: f64 = 111_195.0;

fn search(
    lat: f64,
    lng: f64,
    radius_m: u32,
    cuisine: &str,
    page_size: u32,
    page_token: &str,
) -> pb::SearchNearbyRequest {
    pb::SearchNearbyRequest {
        lat,
        lng,
        radius_m,
        cuisine: cuisine.into(),
        open_now: false,
        page_size,
        page_token: page_token.into(),
    }
}

#[tokio::test]
async fn search_finds_restaurants_by_distance_cuisine_and_page() {
    let server = TestServer::start().await;
    // Six restaurants due north of the query point at 300 m steps, created
    // out of distance order, and one 20 km away. Cuisines alternate.
    let mut expected = Vec::new();
    for i in [4, 1, 6, 3, 5, 2] {
        let cuisine = if i % 2 == 0 { "pizza" } else { "sushi" };
        let (restaurant, _) =
            server.restaurant_at(&format!("R{i}"), cuisine, LAT + (i as f64 * 300.0) / M_PER_DEG, LNG).await;
        expected.push((i, restaurant.restaurant_id, cuisine));
    }
    expected.sort();
    let expected: Vec<_> = expected.into_iter().map(|(_, id, cuisine)| (id, cuisine)).collect();
    server.restaurant_at("Far away", "pizza", LAT + 20_000.0 / M_PER_DEG, LNG).await;
    let mut client = server.restaurants(None);

    let all = client.search_nearby(search(LAT, LNG, 5_000, "", 0, "")).await.unwrap().into_inner();
    let ids: Vec<_> = all.restaurants.iter().map(|r| r.restaurant_id.clone()).collect();
    assert_eq!(ids, expected.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), "nearest first, far one left out");
    let distances: Vec<u32> = all.restaurants.iter().map(|r| r.distance_m).collect();
    for (i, d) in distances.iter().enumerate() {
        let want = (i as u32 + 1) * 300;
        assert!(d.abs_diff(want) <= 2, "distance {d} for {want}");
    }
    assert!(all.restaurants.iter().all(|r| r.open_now && r.delivery_fee.is_some()));

    // A smaller radius cuts by exact distance, not by cell.
    let near = client.search_nearby(search(LAT, LNG, 1_000, "", 0, "")).await.unwrap().into_inner();
    assert_eq!(near.restaurants.len(), 3);

    let pizza = client.search_nearby(search(LAT, LNG, 5_000, "Pizza", 0, "")).await.unwrap().into_inner();
    let pizza_ids: Vec<_> = pizza.restaurants.iter().map(|r| r.restaurant_id.clone()).collect();
    let want: Vec<_> = expected.iter().filter(|(_, c)| *c == "pizza").map(|(id, _)| id.clone()).collect();
    assert_eq!(pizza_ids, want);

    // Pages of two walk the same order without repeats or gaps.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = client.search_nearby(search(LAT, LNG, 5_000, "", 2, &token)).await.unwrap().into_inner();
        assert!(page.restaurants.len() <= 2);
        paged.extend(page.restaurants.into_iter().map(|r| r.restaurant_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, ids);

    // A token from one query does not page another.
    let first = client.search_nearby(search(LAT, LNG, 5_000, "", 2, "")).await.unwrap().into_inner();
    let err = client.search_nearby(search(LAT, LNG, 4_000, "", 2, &first.next_page_token)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"), "{}", err.message());
}

#[tokio::test]
async fn search_rejects_bad_coordinates_and_radius() {
    let server = TestServer::start().await;
    let mut client = server.restaurants(None);
    for (request, field) in [
        (search(91.0, LNG, 1_000, "", 0, ""), "lat"),
        (search(LAT, -181.0, 1_000, "", 0, ""), "lng"),
        (search(0.0, 0.0, 1_000, "", 0, ""), "lat"),
        (search(LAT, LNG, 50_001, "", 0, ""), "radius_m"),
        (search(LAT, LNG, 1_000, "", 0, "not-a-token"), "page_token"),
    ] {
        let err = client.search_nearby(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
        let violations =
            err.get_error_details().bad_request().map(|bad| bad.field_violations.clone()).unwrap_or_default();
        assert_eq!(violations.first().map(|v| v.field.as_str()), Some(field), "{err:?}");
    }
}

#[tokio::test]
async fn only_admins_create_restaurants_and_bad_profiles_are_refused() {
    let server = TestServer::start().await;
    let customer = server.customer().await;
    let err = server
        .restaurants(Some(&customer))
        .create_restaurant(pb::CreateRestaurantRequest { profile: Some(profile("X", "pizza", LAT, LNG)) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = server
        .restaurants(None)
        .create_restaurant(pb::CreateRestaurantRequest { profile: Some(profile("X", "pizza", LAT, LNG)) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let admin = server.admin().await;
    let mut client = server.restaurants(Some(&admin));
    let mut bad_zone = profile("X", "pizza", LAT, LNG);
    bad_zone.time_zone = "Mars/Olympus".into();
    let mut bad_radius = profile("X", "pizza", LAT, LNG);
    bad_radius.delivery_radius_m = 0;
    let mut bad_hours = profile("X", "pizza", LAT, LNG);
    bad_hours.opening_hours[0].opens_at = "25:00".into();
    let mut bad_phone = profile("X", "pizza", LAT, LNG);
    bad_phone.phone = "01 23 45 67 89".into();
    let mut no_name = profile("X", "pizza", LAT, LNG);
    no_name.name = "  ".into();
    for (bad, field) in [
        (bad_zone, "profile.time_zone"),
        (bad_radius, "profile.delivery_radius_m"),
        (bad_hours, "profile.opening_hours[0].opens_at"),
        (no_name, "profile.name"),
        (bad_phone, "profile.phone"),
    ] {
        let err = client.create_restaurant(pb::CreateRestaurantRequest { profile: Some(bad) }).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
}

#[tokio::test]
async fn the_menu_is_cached_invalidated_by_upsert_and_served_without_redis() {
    let mut redis = PrivateRedis::start();
    let server = TestServer::start_with(|config| config.stores.redis.url = redis.url()).await;
    let (restaurant, stored) = server.restaurant_at("Cached", "pizza", LAT, LNG).await;
    let id = restaurant.restaurant_id.clone();
    let mut client = server.restaurants(None);

    let first = client.get_menu(pb::GetMenuRequest { restaurant_id: id.clone() }).await.unwrap().into_inner();
    assert_eq!(first.categories, stored.categories);
    assert_eq!(first.menu_version, stored.menu_version);

    // Served from the cache: a change written behind the store's back is
    // not seen until the cache is invalidated.
    let client_pg = server.stores.postgres.client().await.unwrap();
    client_pg.execute("UPDATE menu_items SET name = 'Sneaky' WHERE name = 'Bruschetta'", &[]).await.unwrap();
    let cached = client.get_menu(pb::GetMenuRequest { restaurant_id: id.clone() }).await.unwrap().into_inner();
    assert!(cached.categories.iter().flat_map(|c| &c.items).any(|i| i.name == "Bruschetta"), "cache hit expected");

    // UpsertMenu invalidates: the new menu is served at once.
    let staff = server.staff(id.parse().unwrap()).await;
    let mut categories = demo_menu();
    categories[1].items[0].name = "Garlic bread".into();
    let updated = server
        .restaurants(Some(&staff))
        .upsert_menu(pb::UpsertMenuRequest {
            restaurant_id: id.clone(),
            categories,
            expected_menu_version: stored.menu_version.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(updated.menu_version, stored.menu_version);
    let fresh = client.get_menu(pb::GetMenuRequest { restaurant_id: id.clone() }).await.unwrap().into_inner();
    assert!(fresh.categories.iter().flat_map(|c| &c.items).any(|i| i.name == "Garlic bread"));
    assert_eq!(fresh.menu_version, updated.menu_version);

    // A stale expected version is refused and changes nothing.
    let err = server
        .restaurants(Some(&staff))
        .upsert_menu(pb::UpsertMenuRequest {
            restaurant_id: id.clone(),
            categories: demo_menu(),
            expected_menu_version: stored.menu_version.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    let reason = err.get_error_details().error_info().map(|info| info.reason.clone());
    assert_eq!(reason.as_deref(), Some("ERROR_REASON_VERSION_MISMATCH"));

    // Redis down: the menu still comes, from the database.
    redis.kill();
    let without_redis = client.get_menu(pb::GetMenuRequest { restaurant_id: id.clone() }).await.unwrap().into_inner();
    assert_eq!(without_redis.menu_version, updated.menu_version);
    assert_eq!(without_redis.categories, fresh.categories);
    redis.restart();
}

#[tokio::test]
async fn menus_are_edited_only_by_their_staff_and_validated() {
    let server = TestServer::start().await;
    let (restaurant, stored) = server.restaurant_at("Mine", "pizza", LAT, LNG).await;
    let (other, theirs) = server.restaurant_at("Theirs", "pizza", LAT, LNG).await;
    let stranger = server.staff(other.restaurant_id.parse().unwrap()).await;
    let err = server
        .restaurants(Some(&stranger))
        .upsert_menu(pb::UpsertMenuRequest {
            restaurant_id: restaurant.restaurant_id.clone(),
            categories: demo_menu(),
            expected_menu_version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let staff = server.staff(restaurant.restaurant_id.parse().unwrap()).await;
    let mut negative = demo_menu();
    negative[0].items[0].price = Some(common::money("-1.00"));
    let mut foreign = demo_menu();
    foreign[1].items[0].item_id = String::from("not-a-uuid");
    let mut unpriced = demo_menu();
    unpriced[1].items[0].price = None;
    // The stored menu again, but its last item carries the id of another restaurant's item:
    // refused after the items before it were checked, and none of them is touched.
    let mut stolen = stored.categories.clone();
    let last = stolen.last_mut().unwrap().items.last_mut().unwrap();
    last.item_id = theirs.categories[0].items[0].item_id.clone();
    for (categories, field) in [
        (negative, "categories[0].items[0].price"),
        (foreign, "categories[1].items[0].item_id"),
        (unpriced, "categories[1].items[0].price"),
        (stolen, "another restaurant"),
    ] {
        let err = server
            .restaurants(Some(&staff))
            .upsert_menu(pb::UpsertMenuRequest {
                restaurant_id: restaurant.restaurant_id.clone(),
                categories,
                expected_menu_version: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    // Nothing changed.
    let menu = server
        .restaurants(None)
        .get_menu(pb::GetMenuRequest { restaurant_id: restaurant.restaurant_id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(menu.menu_version, stored.menu_version);
    assert_eq!(menu.categories, stored.categories, "every category and item as it was");
    // In the database too, not only in the menu cache.
    let restaurant_id: uuid::Uuid = restaurant.restaurant_id.parse().unwrap();
    let client = server.stores.postgres.client().await.unwrap();
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[&restaurant_id]).await.unwrap().get::<_, i64>(0) as usize }
    };
    let items = count("SELECT count(*) FROM menu_items WHERE restaurant_id = $1 AND NOT archived").await;
    assert_eq!(items, stored.categories.iter().map(|c| c.items.len()).sum::<usize>());
    assert_eq!(count("SELECT count(*) FROM menu_categories WHERE restaurant_id = $1").await, stored.categories.len());
}

#[tokio::test]
async fn the_currency_is_fixed_while_the_menu_has_items() {
    let server = TestServer::start().await;
    let (restaurant, _) = server.restaurant_at("Priced", "pizza", LAT, LNG).await;
    let id = restaurant.restaurant_id.clone();
    let staff = server.staff(id.parse().unwrap()).await;
    let update = |currency: &str, paused: bool| {
        let mut client = server.restaurants(Some(&staff));
        let mut profile = profile("Priced", "pizza", LAT, LNG);
        profile.currency_code = currency.into();
        profile.paused = paused;
        let mask = prost_types::FieldMask { paths: vec!["currency_code".into(), "paused".into()] };
        let request =
            pb::UpdateRestaurantRequest { restaurant_id: id.clone(), profile: Some(profile), update_mask: Some(mask) };
        async move { client.update_restaurant(request).await }
    };

    let err = update("USD", true).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("EUR") && err.message().contains("currency"), "{}", err.message());
    let mut reader = server.restaurants(None);
    let unchanged = reader.get_restaurant(pb::GetRestaurantRequest { restaurant_id: id.clone() }).await.unwrap();
    let unchanged = unchanged.into_inner().restaurant.unwrap().profile.unwrap();
    assert_eq!((unchanged.currency_code.as_str(), unchanged.paused), ("EUR", false), "nothing changed");
    let paused = update("EUR", true).await.expect("the same currency with other changes is fine");
    assert!(paused.into_inner().restaurant.unwrap().profile.unwrap().paused);

    // With the menu emptied, the prices to come may be in another currency.
    server
        .restaurants(Some(&staff))
        .upsert_menu(pb::UpsertMenuRequest {
            restaurant_id: id.clone(),
            categories: vec![],
            expected_menu_version: String::new(),
        })
        .await
        .unwrap();
    let switched = update("USD", false).await.expect("no items, no prices to keep");
    assert_eq!(switched.into_inner().restaurant.unwrap().profile.unwrap().currency_code, "USD");
}

#[tokio::test]
async fn an_update_without_a_mask_changes_only_the_fields_it_sets() {
    let server = TestServer::start().await;
    let (restaurant, _) = server.restaurant_at("Partial", "pizza", LAT, LNG).await;
    let id = restaurant.restaurant_id.clone();
    let before = restaurant.profile.unwrap();
    let staff = server.staff(id.parse().unwrap()).await;
    let update = |profile: pb::RestaurantProfile| {
        let mut client = server.restaurants(Some(&staff));
        let request =
            pb::UpdateRestaurantRequest { restaurant_id: id.clone(), profile: Some(profile), update_mask: None };
        async move { client.update_restaurant(request).await.unwrap().into_inner().restaurant.unwrap().profile.unwrap() }
    };

    let paused = update(pb::RestaurantProfile { paused: true, ..Default::default() }).await;
    assert!(paused.paused);
    assert_eq!(pb::RestaurantProfile { paused: false, ..paused.clone() }, before, "nothing else changed");

    let renamed = update(pb::RestaurantProfile { name: "Partial Pizza".into(), ..Default::default() }).await;
    assert_eq!((renamed.name.as_str(), renamed.paused), ("Partial Pizza", true));
    assert_eq!(renamed.opening_hours, before.opening_hours);
}

#[tokio::test]
async fn an_update_over_a_stale_read_does_not_overwrite_the_change_made_meanwhile() {
    use foodfast_store::restaurants::{ProfileUpdateError, Restaurants};
    let server = TestServer::start().await;
    let (restaurant, _) = server.restaurant_at("Raced", "pizza", LAT, LNG).await;
    let id: uuid::Uuid = restaurant.restaurant_id.parse().unwrap();
    let ttl = std::time::Duration::from_secs(60);
    let store = Restaurants::new(server.stores.postgres.clone(), server.stores.redis.clone(), ttl);
    let read = store.get(id).await.unwrap().unwrap();

    // One manager pauses it...
    let mut paused = read.profile.clone();
    paused.paused = true;
    store.update(id, &paused, read.revision).await.unwrap();
    // ...another, who read it before, renames it: refused, to be merged again over the pause.
    let mut renamed = read.profile.clone();
    renamed.name = "Raced Again".into();
    let refused = store.update(id, &renamed, read.revision).await.unwrap_err();
    assert!(matches!(refused, ProfileUpdateError::Changed { .. }), "{refused:?}");

    // Through the API the merge is redone: both changes stand.
    let staff = server.staff(id).await;
    let request = pb::UpdateRestaurantRequest {
        restaurant_id: restaurant.restaurant_id.clone(),
        profile: Some(pb::RestaurantProfile { name: "Raced Again".into(), ..Default::default() }),
        update_mask: None,
    };
    let updated = server.restaurants(Some(&staff)).update_restaurant(request).await.unwrap().into_inner();
    let profile = updated.restaurant.unwrap().profile.unwrap();
    assert_eq!((profile.name.as_str(), profile.paused), ("Raced Again", true));
}
