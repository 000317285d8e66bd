//! Upload jobs on the real PostgreSQL and the directory object store: the
//! original is kept before the job is queued; one worker holds a job at a
//! time; a claim that lapses is taken over and its old holder then changes
//! nothing; a job sent back waits its turn; a finished image lands on its
//! target.

use std::time::Duration;

use foodfast_domain::access::Role;
use foodfast_domain::media::{ImageTarget, JobState, UploadMetadata};
use foodfast_store::Stores;
use foodfast_store::migrate;
use foodfast_store::uploads::{TargetOwner, Uploads};
use foodfast_store::users::{NewUser, Users};
use uuid::Uuid;

const ORIGINAL: &[u8] = b"\x89PNG\r\n\x1a\nnot decoded by the store";

struct Fixture {
    uploads: Uploads,
    users: Users,
}

impl Fixture {
    async fn new() -> Self {
        let stores = Stores::connect(&foodfast_testkit::fresh_stores().await).await.unwrap();
        migrate::migrate_postgres(&stores.postgres, &migrate::cockroach_migrations()).await.unwrap();
        Self {
            uploads: Uploads::new(stores.postgres.clone(), stores.objects.clone()),
            users: Users::new(stores.postgres),
        }
    }

    /// A customer and its queued avatar upload.
    async fn avatar_job(&self) -> (Uuid, Uuid) {
        let email = format!("{}@test", Uuid::new_v4());
        let user = NewUser {
            email: &email,
            phone: None,
            name: "Sam Lee",
            role: Role::Customer,
            password_hash: "!",
            restaurant_id: None,
        };
        let user_id = self.users.create(&user).await.unwrap();
        let metadata =
            UploadMetadata::new(ImageTarget::AccountAvatar, user_id, "image/png", ORIGINAL.len() as u64, "me.png", "")
                .unwrap();
        let job = self.uploads.accept(user_id, &metadata, ORIGINAL.to_vec()).await.unwrap();
        assert_eq!((job.state, job.progress, job.owner_id), (JobState::Queued, 0, user_id));
        (user_id, job.id)
    }
}

#[tokio::test]
async fn a_lapsed_claim_is_taken_over_and_its_old_holder_changes_nothing() {
    let fixture = Fixture::new().await;
    let (user_id, job_id) = fixture.avatar_job().await;
    let uploads = &fixture.uploads;
    assert_eq!(uploads.target_owner(ImageTarget::AccountAvatar, user_id).await.unwrap(), TargetOwner::Account);
    assert_eq!(uploads.pending().await.unwrap(), 1);

    let lease = Duration::from_millis(800);
    let first = uploads.claim_due(10, lease).await.unwrap();
    assert_eq!(first.len(), 1);
    let first = &first[0];
    assert_eq!((first.id, first.attempt), (job_id, 1));
    assert_eq!(uploads.original(first).await.unwrap(), ORIGINAL);
    assert!(uploads.claim_due(10, lease).await.unwrap().is_empty(), "one holder at a time");
    assert!(uploads.progress(first, 20).await.unwrap());
    assert_eq!(uploads.get(job_id).await.unwrap().unwrap().state, JobState::Processing);

    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    let second = uploads.claim_due(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(second.len(), 1, "the lapsed claim is taken over");
    let second = &second[0];
    assert_eq!((second.id, second.attempt), (job_id, 2));

    assert!(!uploads.progress(first, 60).await.unwrap());
    assert_eq!(uploads.succeed(first, b"late".to_vec(), "jpg").await.unwrap(), None);
    assert!(!uploads.fail(first, "late").await.unwrap());
    assert!(!uploads.retry_later(first, Duration::ZERO).await.unwrap());

    let ended = uploads.succeed(second, b"processed".to_vec(), "jpg").await.unwrap().expect("the holder ends it");
    assert_eq!((ended.job.state, ended.job.progress, ended.restaurant_id), (JobState::Succeeded, 100, None));
    assert!(
        ended.job.result_url.ends_with(&format!("images/account_avatar/{user_id}/{job_id}.jpg")),
        "{}",
        ended.job.result_url
    );
    assert_eq!(fixture.users.account(user_id).await.unwrap().unwrap().avatar_url, ended.job.result_url);
    assert_eq!(uploads.get(job_id).await.unwrap().unwrap(), ended.job);
    assert!(uploads.original(second).await.is_err(), "the original goes once the job ends");
    assert_eq!(uploads.pending().await.unwrap(), 0);
    assert!(uploads.claim_due(10, lease).await.unwrap().is_empty(), "an ended job is never claimed again");
}

#[tokio::test]
async fn an_older_upload_finishing_last_does_not_put_the_old_picture_back() {
    let fixture = Fixture::new().await;
    let (user_id, older) = fixture.avatar_job().await;
    let metadata =
        UploadMetadata::new(ImageTarget::AccountAvatar, user_id, "image/png", ORIGINAL.len() as u64, "new.png", "")
            .unwrap();
    let newer = fixture.uploads.accept(user_id, &metadata, ORIGINAL.to_vec()).await.unwrap().id;
    let uploads = &fixture.uploads;
    let claimed = uploads.claim_due(10, Duration::from_secs(60)).await.unwrap();
    let claim = |id| claimed.iter().find(|c| c.id == id).unwrap();

    // The older one was held up (a store error, a retry); the newer one finishes first.
    let shown = uploads.succeed(claim(newer), b"new".to_vec(), "jpg").await.unwrap().unwrap();
    assert_eq!(shown.job.state, JobState::Succeeded);
    let late = uploads.succeed(claim(older), b"old".to_vec(), "jpg").await.unwrap().unwrap();
    assert_eq!(
        (late.job.state, late.job.error.as_str()),
        (JobState::Failed, "a picture uploaded after this one is shown already")
    );
    assert_eq!(fixture.users.account(user_id).await.unwrap().unwrap().avatar_url, shown.job.result_url);
}

#[tokio::test]
async fn a_job_sent_back_waits_its_turn_and_a_failure_keeps_its_reason() {
    let fixture = Fixture::new().await;
    let (user_id, job_id) = fixture.avatar_job().await;
    let uploads = &fixture.uploads;
    let lease = Duration::from_secs(60);

    let claimed = uploads.claim_due(10, lease).await.unwrap().remove(0);
    assert!(uploads.retry_later(&claimed, Duration::from_millis(700)).await.unwrap());
    assert_eq!(uploads.get(job_id).await.unwrap().unwrap().state, JobState::Queued);
    assert!(uploads.claim_due(10, lease).await.unwrap().is_empty(), "not due yet");
    tokio::time::sleep(Duration::from_millis(900)).await;
    let again = uploads.claim_due(10, lease).await.unwrap().remove(0);
    assert_eq!((again.id, again.attempt), (job_id, 2));

    assert!(uploads.fail(&again, "not a decodable PNG").await.unwrap());
    assert!(uploads.original(&again).await.is_err(), "a failed job's original goes too");
    let failed = uploads.get(job_id).await.unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.error.as_str(), failed.result_url.as_str()),
        (JobState::Failed, "not a decodable PNG", "")
    );
    assert_eq!(fixture.users.account(user_id).await.unwrap().unwrap().avatar_url, "", "a failure changes nothing");
    assert_eq!(uploads.pending().await.unwrap(), 0);
}

#[tokio::test]
async fn what_an_image_is_for_must_exist() {
    let fixture = Fixture::new().await;
    for target in [ImageTarget::MenuItem, ImageTarget::RestaurantCover, ImageTarget::AccountAvatar] {
        let owner = fixture.uploads.target_owner(target, Uuid::new_v4()).await.unwrap();
        assert_eq!(owner, TargetOwner::Missing, "{target:?}");
    }
    assert_eq!(fixture.uploads.get(Uuid::new_v4()).await.unwrap(), None);
}
