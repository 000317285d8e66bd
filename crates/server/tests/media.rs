//! MediaService on the real stores: an image streamed in chunks is stored,
//! processed by the server's worker (shrunk to fit, re-encoded) and shown
//! where it belongs (the menu, the profile); an image that does not decode
//! fails its job with the reason; a malformed upload is refused with what
//! to fix; only the owner uploads and reads its jobs.

mod common;

use std::io::Cursor;
use std::time::Duration;

use common::{Authed, TestServer, item};
use foodfast_api::v1 as pb;
use foodfast_api::v1::media_service_client::MediaServiceClient;
use foodfast_api::v1::upload_image_request::Payload;
use foodfast_domain::access::Principal;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use sha2::{Digest, Sha256};
use tonic::Code;
use uuid::Uuid;

/// A photo-like RGB image: noisy, so it does not compress to nothing.
fn photo(width: u32, height: u32) -> DynamicImage {
    let noise = |x: u32, y: u32| (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)).to_be_bytes();
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        let [_, r, g, b] = noise(x, y);
        Rgb([r, g, b])
    }))
}

fn png(image: &DynamicImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).unwrap();
    bytes
}

fn metadata(kind: pb::ImageTargetKind, target_id: &str, content_type: &str, bytes: &[u8]) -> pb::UploadMetadata {
    pb::UploadMetadata {
        target_kind: kind as i32,
        target_id: target_id.into(),
        content_type: content_type.into(),
        total_size_bytes: bytes.len() as u64,
        file_name: "photo.png".into(),
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

/// Sends `first` (if any) and then `bytes` in 64 KiB chunks, as an app does.
async fn send(
    client: &mut MediaServiceClient<Authed>,
    first: Option<pb::UploadMetadata>,
    bytes: &[u8],
) -> Result<String, tonic::Status> {
    let messages: Vec<pb::UploadImageRequest> = first
        .map(Payload::Metadata)
        .into_iter()
        .chain(bytes.chunks(64 * 1024).map(|chunk| Payload::Chunk(chunk.to_vec())))
        .map(|payload| pb::UploadImageRequest { payload: Some(payload) })
        .collect();
    let response = client.upload_image(tokio_stream::iter(messages)).await?;
    Ok(response.into_inner().job_id)
}

async fn upload(
    client: &mut MediaServiceClient<Authed>,
    kind: pb::ImageTargetKind,
    target_id: &str,
    bytes: &[u8],
) -> Result<String, tonic::Status> {
    send(client, Some(metadata(kind, target_id, "image/png", bytes)), bytes).await
}

/// Polls the job as its `poll_after` says until it ends.
async fn finished(client: &mut MediaServiceClient<Authed>, job_id: &str) -> pb::UploadJob {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = client
            .get_upload_job(pb::GetUploadJobRequest { job_id: job_id.into() })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        match job.state() {
            pb::UploadJobState::Succeeded | pb::UploadJobState::Failed => {
                assert!(job.poll_after.is_none(), "an ended job needs no more polling");
                return job;
            }
            state => {
                assert!(tokio::time::Instant::now() < deadline, "the job is still {state:?} after 30 s");
                let poll_after = job.poll_after.expect("a job in progress says when to poll again");
                assert!(poll_after.seconds > 0 || poll_after.nanos > 0);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The image at a `file://` result URL (the directory object store).
fn stored_image(result_url: &str) -> (ImageFormat, DynamicImage) {
    let path = result_url.strip_prefix("file://").expect("the test server stores objects in a directory");
    let bytes = std::fs::read(path).unwrap();
    (image::guess_format(&bytes).unwrap(), image::load_from_memory(&bytes).unwrap())
}

/// The menu customers see.
async fn published_menu(server: &TestServer, restaurant_id: &str) -> pb::GetMenuResponse {
    let request = pb::GetMenuRequest { restaurant_id: restaurant_id.into() };
    server.restaurants(None).get_menu(request).await.unwrap().into_inner()
}

fn image_of<'m>(menu: &'m pb::GetMenuResponse, item_id: &str) -> &'m str {
    &menu.categories.iter().flat_map(|c| &c.items).find(|i| i.item_id == item_id).unwrap().image_url
}

async fn staff_and_menu(server: &TestServer) -> (Principal, pb::Restaurant, pb::UpsertMenuResponse) {
    let (restaurant, menu) = server.restaurant_at("Media Pizza", "pizza", 52.52, 13.40).await;
    let staff = server.staff(restaurant.restaurant_id.parse().unwrap()).await;
    (staff, restaurant, menu)
}

#[tokio::test]
async fn a_menu_photo_is_shrunk_stored_as_jpeg_and_shown_on_the_menu() {
    let server = TestServer::start().await;
    let (staff, restaurant, menu) = staff_and_menu(&server).await;
    let margherita = item(&menu, "Margherita").item_id.clone();
    let mut media = server.media(Some(&staff));

    let original = png(&photo(2400, 1200));
    assert!(original.len() > 64 * 1024, "the photo arrives in several chunks");
    let job_id = upload(&mut media, pb::ImageTargetKind::MenuItem, &margherita, &original).await.unwrap();
    let job = finished(&mut media, &job_id).await;

    assert_eq!(job.state(), pb::UploadJobState::Succeeded, "{}", job.error);
    assert_eq!((job.progress_percent, job.error.as_str()), (100, ""));
    assert_eq!((job.target_kind(), job.target_id.as_str()), (pb::ImageTargetKind::MenuItem, margherita.as_str()));
    let (format, stored) = stored_image(&job.result_url);
    assert_eq!((format, stored.width(), stored.height()), (ImageFormat::Jpeg, 1600, 800));

    let shown = published_menu(&server, &restaurant.restaurant_id).await;
    assert_eq!(image_of(&shown, &margherita), job.result_url);
    assert_ne!(shown.menu_version, menu.menu_version, "a new image is a new menu version");

    // Staff edit the menu from their old copy (no image), or send an image URL of their own.
    let mut edited = menu.categories.clone();
    edited[0].items[0].description = "Now with more basil".into();
    edited[0].items[0].image_url = "https://elsewhere.example/pizza.jpg".into();
    let upsert = pb::UpsertMenuRequest {
        restaurant_id: restaurant.restaurant_id.clone(),
        categories: edited,
        expected_menu_version: String::new(),
    };
    let stored = server.restaurants(Some(&staff)).upsert_menu(upsert).await.unwrap().into_inner();
    let stored_item = stored.categories.iter().flat_map(|c| &c.items).find(|i| i.item_id == margherita).unwrap();
    assert_eq!(stored_item.description, "Now with more basil");
    assert_eq!(stored_item.image_url, job.result_url, "UpsertMenu ignores image_url: the uploaded image stays");
    assert_eq!(image_of(&published_menu(&server, &restaurant.restaurant_id).await, &margherita), job.result_url);

    let cover =
        upload(&mut media, pb::ImageTargetKind::RestaurantCover, &restaurant.restaurant_id, &original).await.unwrap();
    let cover = finished(&mut media, &cover).await;
    assert_eq!(cover.state(), pb::UploadJobState::Succeeded, "{}", cover.error);
    let shown = server
        .restaurants(None)
        .get_restaurant(pb::GetRestaurantRequest { restaurant_id: restaurant.restaurant_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .restaurant
        .unwrap();
    assert_eq!(shown.image_url, cover.result_url);
}

#[tokio::test]
async fn an_avatar_keeps_its_transparency_and_appears_on_the_profile() {
    let server = TestServer::start().await;
    let customer = server.customer().await;
    let mut media = server.media(Some(&customer));
    let avatar = DynamicImage::ImageRgba8(RgbaImage::from_fn(800, 600, |x, _| Rgba([200, 40, 40, (x % 256) as u8])));

    let job_id = upload(&mut media, pb::ImageTargetKind::AccountAvatar, &customer.user_id.to_string(), &png(&avatar))
        .await
        .unwrap();
    let job = finished(&mut media, &job_id).await;

    assert_eq!(job.state(), pb::UploadJobState::Succeeded, "{}", job.error);
    let (format, stored) = stored_image(&job.result_url);
    assert_eq!((format, stored.width(), stored.height()), (ImageFormat::Png, 512, 384));
    assert!(stored.color().has_alpha());
    let profile = server
        .accounts(Some(&customer))
        .get_profile(pb::GetProfileRequest {})
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(profile.avatar_url, job.result_url);
}

#[tokio::test]
async fn an_image_that_does_not_decode_fails_its_job_with_the_reason() {
    let server = TestServer::start().await;
    let (staff, restaurant, menu) = staff_and_menu(&server).await;
    let margherita = item(&menu, "Margherita").item_id.clone();
    let mut media = server.media(Some(&staff));
    // A PNG signature and header, then the data cut off: it passes the type check at upload.
    let mut truncated = png(&photo(300, 300));
    truncated.truncate(120);

    let job_id = upload(&mut media, pb::ImageTargetKind::MenuItem, &margherita, &truncated).await.unwrap();
    let job = finished(&mut media, &job_id).await;

    assert_eq!(job.state(), pb::UploadJobState::Failed);
    assert_eq!(job.error, "not a decodable PNG");
    assert_eq!(job.result_url, "");
    let shown = published_menu(&server, &restaurant.restaurant_id).await;
    assert_eq!(image_of(&shown, &margherita), "", "a failed job changes nothing");
}

#[tokio::test]
async fn a_malformed_upload_is_refused_with_what_to_fix() {
    let server = TestServer::start().await;
    let (staff, _, menu) = staff_and_menu(&server).await;
    let margherita = item(&menu, "Margherita").item_id.clone();
    let mut media = server.media(Some(&staff));
    let bytes = png(&photo(64, 64));
    let refused = |result: Result<String, tonic::Status>| {
        let status = result.expect_err("refused");
        (status.code(), status.message().to_owned())
    };

    let (code, message) = refused(send(&mut media, None, &bytes).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("metadata must be the first message"), "{message}");

    let mut longer = metadata(pb::ImageTargetKind::MenuItem, &margherita, "image/png", &bytes);
    longer.total_size_bytes += 10;
    let (code, message) = refused(send(&mut media, Some(longer), &bytes).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("total_size_bytes"), "{message}");

    let mut wrong_digest = metadata(pb::ImageTargetKind::MenuItem, &margherita, "image/png", &bytes);
    wrong_digest.sha256 = hex::encode(Sha256::digest(b"something else"));
    let (code, message) = refused(send(&mut media, Some(wrong_digest), &bytes).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("metadata.sha256 does not match the bytes received"), "{message}");

    let claims_jpeg = metadata(pb::ImageTargetKind::MenuItem, &margherita, "image/jpeg", &bytes);
    let (code, message) = refused(send(&mut media, Some(claims_jpeg), &bytes).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("metadata.content_type"), "{message}");

    let gif = metadata(pb::ImageTargetKind::MenuItem, &margherita, "image/gif", &bytes);
    assert_eq!(refused(send(&mut media, Some(gif), &bytes).await).0, Code::InvalidArgument);

    let missing = Uuid::new_v4().to_string();
    let (code, message) = refused(upload(&mut media, pb::ImageTargetKind::MenuItem, &missing, &bytes).await);
    assert_eq!((code, message), (Code::NotFound, format!("menu item {missing} not found")));

    let no_kind = metadata(pb::ImageTargetKind::Unspecified, &margherita, "image/png", &bytes);
    assert_eq!(refused(send(&mut media, Some(no_kind), &bytes).await).0, Code::InvalidArgument);

    let mut anonymous = server.media(None);
    let code = refused(upload(&mut anonymous, pb::ImageTargetKind::MenuItem, &margherita, &bytes).await).0;
    assert_eq!(code, Code::Unauthenticated);
}

#[tokio::test]
async fn a_stream_that_sends_nothing_holds_no_upload_place_and_one_account_is_rate_limited() {
    let server = TestServer::start_with(|config| {
        config.media.max_concurrent_uploads = 1;
        config.media.upload_rate.max = 2;
    })
    .await;
    let customer = server.customer().await;
    let avatar = customer.user_id.to_string();
    let bytes = png(&photo(64, 64));

    // An app that opened an upload and went quiet.
    let (_quiet, nothing) = tokio::sync::mpsc::channel::<pb::UploadImageRequest>(1);
    let mut idle_client = server.media(Some(&customer));
    let idle =
        tokio::spawn(
            async move { idle_client.upload_image(tokio_stream::wrappers::ReceiverStream::new(nothing)).await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut media = server.media(Some(&customer));
    upload(&mut media, pb::ImageTargetKind::AccountAvatar, &avatar, &bytes).await.expect("the only place is free");
    upload(&mut media, pb::ImageTargetKind::AccountAvatar, &avatar, &bytes).await.unwrap();

    let status = upload(&mut media, pb::ImageTargetKind::AccountAvatar, &avatar, &bytes).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too many images"), "{status:?}");
    let other = server.customer().await;
    let mut theirs = server.media(Some(&other));
    upload(&mut theirs, pb::ImageTargetKind::AccountAvatar, &other.user_id.to_string(), &bytes)
        .await
        .expect("another account has its own allowance");

    let status = idle.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("metadata"), "{status:?}");
}

#[tokio::test]
async fn only_the_owner_uploads_and_reads_its_jobs() {
    let server = TestServer::start().await;
    let (staff, _, menu) = staff_and_menu(&server).await;
    let margherita = item(&menu, "Margherita").item_id.clone();
    let bytes = png(&photo(64, 64));
    let (other_restaurant, _) = server.restaurant_at("Elsewhere", "sushi", 52.50, 13.30).await;
    let other_staff = server.staff(other_restaurant.restaurant_id.parse().unwrap()).await;
    let customer = server.customer().await;
    let other_customer = server.customer().await;

    for (caller, kind, target) in [
        (&other_staff, pb::ImageTargetKind::MenuItem, margherita.clone()),
        (&customer, pb::ImageTargetKind::MenuItem, margherita.clone()),
        (&customer, pb::ImageTargetKind::AccountAvatar, other_customer.user_id.to_string()),
        (&staff, pb::ImageTargetKind::RestaurantCover, other_restaurant.restaurant_id.clone()),
    ] {
        let status = upload(&mut server.media(Some(caller)), kind, &target, &bytes).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{:?} uploading for {kind:?}: {status:?}", caller.role);
    }

    let job_id =
        upload(&mut server.media(Some(&staff)), pb::ImageTargetKind::MenuItem, &margherita, &bytes).await.unwrap();
    let read = |caller: &Principal, job_id: &str| {
        let mut client = server.media(Some(caller));
        let request = pb::GetUploadJobRequest { job_id: job_id.into() };
        async move { client.get_upload_job(request).await.map(|response| response.into_inner().job.unwrap()) }
    };
    assert_eq!(read(&other_staff, &job_id).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(read(&customer, &job_id).await.unwrap_err().code(), Code::PermissionDenied);
    let missing = Uuid::new_v4().to_string();
    assert_eq!(read(&customer, &missing).await.unwrap_err().code(), Code::PermissionDenied, "existence is not told");
    let admin = server.admin().await;
    assert_eq!(read(&admin, &job_id).await.unwrap().job_id, job_id);
    assert_eq!(read(&admin, &missing).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(read(&admin, "not-a-uuid").await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn an_image_whose_item_left_the_menu_before_processing_fails_and_changes_nothing() {
    // No worker of its own: the item leaves the menu while the job waits.
    let server = TestServer::start_with(|config| config.media.workers = 0).await;
    let (staff, restaurant, menu) = staff_and_menu(&server).await;
    let margherita = item(&menu, "Margherita").item_id.clone();
    let mut media = server.media(Some(&staff));
    let job_id = upload(&mut media, pb::ImageTargetKind::MenuItem, &margherita, &png(&photo(64, 64))).await.unwrap();
    let mut without = menu.categories.clone();
    without[0].items.retain(|item| item.item_id != margherita);
    let upsert = pb::UpsertMenuRequest {
        restaurant_id: restaurant.restaurant_id.clone(),
        categories: without,
        expected_menu_version: String::new(),
    };
    let edited = server.restaurants(Some(&staff)).upsert_menu(upsert).await.unwrap().into_inner();

    let stores = &server.stores;
    let uploads = foodfast_store::uploads::Uploads::new(stores.postgres.clone(), stores.objects.clone());
    let restaurants = foodfast_store::restaurants::Restaurants::new(
        stores.postgres.clone(),
        stores.redis.clone(),
        server.config.service.menu_cache_ttl,
    );
    let media_config = foodfast_server::config::MediaConfig { workers: 1, ..server.config.media.clone() };
    let stop = tokio_util::sync::CancellationToken::new();
    let worker =
        tokio::spawn(foodfast_server::media::run(uploads, restaurants, media_config, Default::default(), stop.clone()));
    let job = finished(&mut media, &job_id).await;
    stop.cancel();
    worker.await.unwrap();

    assert_eq!(
        (job.state(), job.error.as_str(), job.result_url.as_str()),
        (pb::UploadJobState::Failed, "the image's target no longer exists", "")
    );
    let shown = published_menu(&server, &restaurant.restaurant_id).await;
    assert_eq!(shown.menu_version, edited.menu_version, "the menu did not change again");
    let processed = std::path::Path::new(&server.config.stores.objects.url).join("images/menu_item").join(&margherita);
    let left: Vec<_> = std::fs::read_dir(&processed).map(|dir| dir.flatten().collect()).unwrap_or_default();
    assert!(left.is_empty(), "the processed image of a gone target is not kept: {left:?}");
}
