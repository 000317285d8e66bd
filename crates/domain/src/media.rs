//! Image uploads: what may be uploaded, by whom, how the bytes must arrive,
//! and where a processing job stands.

use uuid::Uuid;

use crate::access::{Principal, Role};
use crate::validation::{FieldError, max_len};

/// The largest image accepted.
pub const MAX_IMAGE_BYTES: u64 = 10 * 1024 * 1024;
/// The largest piece of an upload stream.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;
pub const MAX_FILE_NAME_CHARS: usize = 255;
/// The longest side of a processed image, in pixels, by target.
pub const MAX_SIDE_PX: u32 = 1_600;
pub const MAX_AVATAR_SIDE_PX: u32 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageTarget {
    MenuItem,
    RestaurantCover,
    AccountAvatar,
}

names!(ImageTarget {
    MenuItem => "menu_item",
    RestaurantCover => "restaurant_cover",
    AccountAvatar => "account_avatar",
});

impl ImageTarget {
    /// The longest side the processed image may have.
    pub fn max_side_px(self) -> u32 {
        match self {
            ImageTarget::AccountAvatar => MAX_AVATAR_SIDE_PX,
            ImageTarget::MenuItem | ImageTarget::RestaurantCover => MAX_SIDE_PX,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Jpeg,
    Png,
    Webp,
}

names!(ImageType { Jpeg => "image/jpeg", Png => "image/png", Webp => "image/webp" });

impl ImageType {
    /// The name people know the format by, for error messages.
    pub fn label(self) -> &'static str {
        match self {
            ImageType::Jpeg => "JPEG",
            ImageType::Png => "PNG",
            ImageType::Webp => "WebP",
        }
    }
}

/// Where an upload job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Processing,
    Succeeded,
    Failed,
}

names!(JobState { Queued => "queued", Processing => "processing", Succeeded => "succeeded", Failed => "failed" });

/// The first message of an upload, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadMetadata {
    pub target: ImageTarget,
    pub target_id: Uuid,
    pub content_type: ImageType,
    pub size_bytes: u64,
    pub file_name: String,
    /// Lower-case hex SHA-256 of the whole file, when the client gave one.
    pub sha256: Option<String>,
}

impl UploadMetadata {
    /// Checks what the proto carries as plain fields (the target kind is
    /// converted by the caller).
    pub fn new(
        target: ImageTarget,
        target_id: Uuid,
        content_type: &str,
        size_bytes: u64,
        file_name: &str,
        sha256: &str,
    ) -> Result<Self, FieldError> {
        let content_type = ImageType::parse(content_type.trim()).ok_or_else(|| {
            FieldError::new(
                "metadata.content_type",
                format!(
                    "must be image/jpeg, image/png or image/webp (got {:?})",
                    crate::validation::excerpt(content_type)
                ),
            )
        })?;
        if size_bytes == 0 || size_bytes > MAX_IMAGE_BYTES {
            return Err(FieldError::new(
                "metadata.total_size_bytes",
                format!("must be 1 byte to 10 MiB ({MAX_IMAGE_BYTES} bytes); got {size_bytes}"),
            ));
        }
        let file_name = file_name.trim();
        max_len("metadata.file_name", file_name, MAX_FILE_NAME_CHARS)?;
        let sha256 = match sha256.trim() {
            "" => None,
            hex if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
                Some(hex.to_owned())
            }
            _ => return Err(FieldError::new("metadata.sha256", "must be 64 lower-case hex digits (a SHA-256)")),
        };
        Ok(Self { target, target_id, content_type, size_bytes, file_name: file_name.to_owned(), sha256 })
    }
}

/// Who may upload an image for `target`: restaurant staff for their
/// restaurant's menu items and cover (`restaurant_id`, the restaurant the
/// target belongs to), admins for anything, everyone for their own avatar.
pub fn may_upload(caller: &Principal, target: ImageTarget, target_id: Uuid, restaurant_id: Option<Uuid>) -> bool {
    match (caller.role, target) {
        (Role::Admin, _) => true,
        (_, ImageTarget::AccountAvatar) => caller.user_id == target_id,
        (Role::RestaurantStaff, ImageTarget::MenuItem | ImageTarget::RestaurantCover) => {
            restaurant_id.is_some() && caller.restaurant_id == restaurant_id
        }
        _ => false,
    }
}

/// The bytes of one upload as they arrive: never more than announced, and
/// all of them before the upload counts.
#[derive(Debug)]
pub struct Received {
    expected: u64,
    bytes: Vec<u8>,
}

impl Received {
    pub fn new(expected: u64) -> Self {
        Self { expected, bytes: Vec::with_capacity(expected.min(MAX_IMAGE_BYTES) as usize) }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), FieldError> {
        if chunk.is_empty() || chunk.len() > MAX_CHUNK_BYTES {
            return Err(FieldError::new("chunk", format!("must be 1 byte to 1 MiB; got {} bytes", chunk.len())));
        }
        let total = self.bytes.len() as u64 + chunk.len() as u64;
        if total > self.expected {
            return Err(FieldError::new(
                "chunk",
                format!("brings the upload to {total} bytes, more than metadata.total_size_bytes ({})", self.expected),
            ));
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole file, once every announced byte arrived.
    pub fn finish(self) -> Result<Vec<u8>, FieldError> {
        if (self.bytes.len() as u64) < self.expected {
            return Err(FieldError::new(
                "chunk",
                format!(
                    "the stream ended after {} bytes; metadata.total_size_bytes announced {}",
                    self.bytes.len(),
                    self.expected
                ),
            ));
        }
        Ok(self.bytes)
    }
}

/// The size of an image scaled to fit within `max_side` on its longest
/// side, keeping its proportions; never enlarged, never below 1 pixel.
pub fn fit_within(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale =
        |side: u32| ((u64::from(side) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest)).max(1);
    (scale(width) as u32, scale(height) as u32)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn metadata(content_type: &str, size: u64, sha256: &str) -> Result<UploadMetadata, FieldError> {
        UploadMetadata::new(ImageTarget::MenuItem, Uuid::new_v4(), content_type, size, "fries.png", sha256)
    }

    #[test]
    fn metadata_names_what_is_wrong() {
        assert!(metadata("image/png", 1, "").is_ok());
        assert_eq!(metadata("image/png", MAX_IMAGE_BYTES, "").unwrap().sha256, None);
        let gif = metadata("image/gif", 10, "").unwrap_err();
        assert_eq!(
            gif.to_string(),
            r#"metadata.content_type must be image/jpeg, image/png or image/webp (got "image/gif")"#
        );
        assert_eq!(metadata("image/png", 0, "").unwrap_err().field, "metadata.total_size_bytes");
        let big = metadata("image/png", MAX_IMAGE_BYTES + 1, "").unwrap_err();
        assert!(big.message.contains("10 MiB"), "{big}");
        let hash = "ab".repeat(32);
        assert_eq!(metadata("image/jpeg", 5, &hash).unwrap().sha256, Some(hash.clone()));
        assert!(metadata("image/jpeg", 5, &hash.to_uppercase()).is_err(), "lower-case only");
        assert!(metadata("image/jpeg", 5, &hash[..62]).is_err());
        let long_name =
            UploadMetadata::new(ImageTarget::MenuItem, Uuid::new_v4(), "image/png", 1, &"n".repeat(256), "");
        assert_eq!(long_name.unwrap_err().field, "metadata.file_name");
    }

    #[test]
    fn staff_upload_for_their_restaurant_everyone_their_avatar_admins_anything() {
        let restaurant = Uuid::new_v4();
        let staff = Principal { user_id: Uuid::new_v4(), role: Role::RestaurantStaff, restaurant_id: Some(restaurant) };
        let item = Uuid::new_v4();
        assert!(may_upload(&staff, ImageTarget::MenuItem, item, Some(restaurant)));
        assert!(may_upload(&staff, ImageTarget::RestaurantCover, restaurant, Some(restaurant)));
        assert!(!may_upload(&staff, ImageTarget::MenuItem, item, Some(Uuid::new_v4())), "another restaurant's");
        assert!(!may_upload(&staff, ImageTarget::MenuItem, item, None), "an item that does not exist");
        assert!(may_upload(&staff, ImageTarget::AccountAvatar, staff.user_id, None));

        let customer = Principal { user_id: Uuid::new_v4(), role: Role::Customer, restaurant_id: None };
        assert!(may_upload(&customer, ImageTarget::AccountAvatar, customer.user_id, None));
        assert!(!may_upload(&customer, ImageTarget::AccountAvatar, Uuid::new_v4(), None), "someone else's avatar");
        assert!(!may_upload(&customer, ImageTarget::MenuItem, item, Some(restaurant)));
        let support = Principal { role: Role::Support, ..customer };
        assert!(!may_upload(&support, ImageTarget::RestaurantCover, restaurant, Some(restaurant)));

        let admin = Principal { user_id: Uuid::new_v4(), role: Role::Admin, restaurant_id: None };
        assert!(may_upload(&admin, ImageTarget::AccountAvatar, customer.user_id, None));
        assert!(may_upload(&admin, ImageTarget::MenuItem, item, Some(restaurant)));
    }

    #[test]
    fn received_bytes_match_the_announced_size_exactly() {
        let mut received = Received::new(5);
        received.push(b"ab").unwrap();
        assert_eq!(received.push(b"").unwrap_err().message, "must be 1 byte to 1 MiB; got 0 bytes");
        let over = received.push(b"cdef").unwrap_err();
        assert_eq!(over.message, "brings the upload to 6 bytes, more than metadata.total_size_bytes (5)");
        received.push(b"cde").unwrap();
        assert_eq!(received.finish().unwrap(), b"abcde");

        let mut short = Received::new(5);
        short.push(b"abc").unwrap();
        assert!(short.finish().unwrap_err().message.starts_with("the stream ended after 3 bytes"));
        assert!(Received::new(MAX_IMAGE_BYTES).push(&vec![0; MAX_CHUNK_BYTES + 1]).is_err());
    }

    #[test]
    fn images_shrink_to_fit_and_never_grow() {
        assert_eq!(fit_within(4000, 3000, 1600), (1600, 1200));
        assert_eq!(fit_within(3000, 4000, 1600), (1200, 1600));
        assert_eq!(fit_within(800, 600, 1600), (800, 600), "small images stay as they are");
        assert_eq!(fit_within(10_000, 1, 512), (512, 1), "never below a pixel");
        assert_eq!(ImageTarget::AccountAvatar.max_side_px(), 512);
    }

    proptest! {
        #[test]
        fn a_fitted_image_stays_within_bounds_and_keeps_its_shape(w in 1u32..20_000, h in 1u32..20_000, max in 1u32..4_000) {
            let (fw, fh) = fit_within(w, h, max);
            prop_assert!(fw >= 1 && fh >= 1);
            prop_assert!(fw.max(fh) <= max.max(w.max(h).min(max)));
            prop_assert!(fw <= w && fh <= h);
            if w.max(h) > max {
                prop_assert_eq!(fw.max(fh), max);
            }
            if w.max(h) > max && fw.min(fh) >= 2 {
                // Proportions within rounding (a side held at 1 pixel cannot keep them).
                let before = f64::from(w) / f64::from(h);
                let after = f64::from(fw) / f64::from(fh);
                prop_assert!((before - after).abs() / before <= 1.0 / f64::from(fw.min(fh)) + 1e-9);
            }
        }
    }
}
