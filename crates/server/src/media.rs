//! Processes uploaded images in the background: each replica's workers
//! claim queued jobs from the database (any replica's uploads), decode the
//! original (refusing what does not decode as the type announced, and
//! decompression bombs), shrink it to fit the target, encode it (JPEG, or
//! PNG to keep transparency), store it, and show it on its target in the
//! same transaction as the job's end. A store failure is retried after
//! `media.retry_after`, up to `media.max_attempts`; a worker that dies loses
//! its claim when the lease ends.

use std::io::Cursor;
use std::sync::Arc;

use foodfast_domain::media::{ImageType, fit_within};
use foodfast_store::restaurants::Restaurants;
use foodfast_store::uploads::{ClaimedUpload, Uploads};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::MediaConfig;
use crate::telemetry::UPLOAD_JOBS_TOTAL;

/// The largest image decoded, per side and in all, in pixels: a small file
/// that claims to be huge is refused before anything is allocated for it.
/// 40 megapixels is more than a phone's photo; decoded as RGBA it is 160 MB.
const MAX_DECODED_SIDE_PX: u32 = 12_000;
const MAX_DECODED_PIXELS: u64 = 40_000_000;
/// The most memory one decode may take (a 16-bit image near the pixel
/// limit is refused: it would take twice as much).
const MAX_DECODE_ALLOC_BYTES: u64 = 256 * 1024 * 1024;

/// What the uploader reads when a decoded picture could not be re-encoded.
const COULD_NOT_ENCODE: &str = "could not be converted; export the picture again as an 8-bit JPEG or PNG";

/// A processed image, ready to store.
#[derive(Debug)]
pub struct Processed {
    pub bytes: Vec<u8>,
    pub extension: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Decodes `bytes` as `declared`; the error says, for people, why not.
pub fn decode(bytes: &[u8], declared: ImageType) -> Result<DynamicImage, String> {
    let format = match declared {
        ImageType::Jpeg => ImageFormat::Jpeg,
        ImageType::Png => ImageFormat::Png,
        ImageType::Webp => ImageFormat::WebP,
    };
    let too_large = || {
        format!(
            "larger than {MAX_DECODED_SIDE_PX} x {MAX_DECODED_SIDE_PX} or {} megapixels, or too large to decode",
            MAX_DECODED_PIXELS / 1_000_000
        )
    };
    let reader = || {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_DECODED_SIDE_PX);
        limits.max_image_height = Some(MAX_DECODED_SIDE_PX);
        limits.max_alloc = Some(MAX_DECODE_ALLOC_BYTES);
        reader.limits(limits);
        reader
    };
    let explain = |err| match err {
        image::ImageError::Limits(_) => too_large(),
        _ => format!("not a decodable {}", declared.label()),
    };
    // The header alone first: the pixel count is checked before any pixel is.
    let (width, height) = reader().into_dimensions().map_err(explain)?;
    if u64::from(width) * u64::from(height) > MAX_DECODED_PIXELS {
        return Err(too_large());
    }
    reader().decode().map_err(explain)
}

/// Shrinks `image` to fit within `max_side` pixels and encodes it.
pub fn encode(image: DynamicImage, max_side: u32, jpeg_quality: u8) -> Result<Processed, String> {
    let (width, height) = fit_within(image.width(), image.height(), max_side);
    let resized = if (width, height) == (image.width(), image.height()) {
        image
    } else {
        // The filtered resize keeps a float copy of the whole width: a large
        // original is first brought to twice the target by the integer
        // thumbnail, which allocates only its output.
        let (twice_width, twice_height) = (width.saturating_mul(2), height.saturating_mul(2));
        let image = if image.width() > twice_width && image.height() > twice_height {
            image.thumbnail_exact(twice_width, twice_height)
        } else {
            image
        };
        image.resize_exact(width, height, image::imageops::FilterType::CatmullRom)
    };
    let mut bytes = Vec::new();
    let extension = if resized.color().has_alpha() {
        resized.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).map_err(|err| err.to_string())?;
        "png"
    } else {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, jpeg_quality);
        resized.to_rgb8().write_with_encoder(encoder).map_err(|err| err.to_string())?;
        "jpg"
    };
    Ok(Processed { bytes, extension, width, height })
}

/// Runs this replica's workers until `stop`. `nudge` makes them look at
/// once (an upload was just accepted here).
pub async fn run(
    uploads: Uploads,
    restaurants: Restaurants,
    config: MediaConfig,
    nudge: Arc<Notify>,
    stop: CancellationToken,
) {
    let worker = Worker { uploads, restaurants, config };
    loop {
        let claimed = match worker.uploads.claim_due(worker.config.workers as u32, worker.config.lease).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %foodfast_store::Chain(&err), "could not claim upload jobs");
                Vec::new()
            }
        };
        let full = claimed.len() == worker.config.workers;
        futures::future::join_all(claimed.iter().map(|job| worker.process(job))).await;
        if full {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = nudge.notified() => {}
            _ = tokio::time::sleep(crate::jitter::jittered(worker.config.poll_interval)) => {}
        }
    }
}

struct Worker {
    uploads: Uploads,
    restaurants: Restaurants,
    config: MediaConfig,
}

/// How one attempt at a job ended.
enum Attempt {
    Done(Processed),
    /// The image is at fault: no attempt will do better.
    Refused(String),
    /// A store failed: try again later.
    Failed(foodfast_store::StoreError),
}

impl Worker {
    async fn process(&self, job: &ClaimedUpload) {
        let outcome = if job.attempt as u32 > self.config.max_attempts {
            let error = format!("could not be processed in {} attempts; upload it again", self.config.max_attempts);
            self.end_failed(job, &error).await;
            "failed"
        } else {
            match self.attempt(job).await {
                Attempt::Done(processed) => self.end_processed(job, processed).await,
                Attempt::Refused(error) => {
                    self.end_failed(job, &error).await;
                    "refused"
                }
                Attempt::Failed(err) => {
                    tracing::warn!(job = %job.id, error = %foodfast_store::Chain(&err), "upload job failed; retrying later");
                    self.retry_later(job).await;
                    "retry"
                }
            }
        };
        metrics::counter!(UPLOAD_JOBS_TOTAL, "target" => job.target.as_str(), "outcome" => outcome).increment(1);
    }

    async fn attempt(&self, job: &ClaimedUpload) -> Attempt {
        let original = match self.uploads.original(job).await {
            Ok(original) => original,
            Err(err) => return Attempt::Failed(err),
        };
        self.progress(job, 20).await;
        let content_type = job.content_type;
        let decoded = tokio::task::spawn_blocking(move || decode(&original, content_type)).await;
        let image = match decoded {
            Ok(Ok(image)) => image,
            Ok(Err(reason)) => return Attempt::Refused(reason),
            Err(panicked) => {
                tracing::error!(job = %job.id, error = %panicked, "decoding an upload panicked");
                return Attempt::Refused(format!("not a decodable {}", content_type.label()));
            }
        };
        self.progress(job, 60).await;
        let (max_side, quality) = (job.target.max_side_px(), self.config.jpeg_quality);
        match tokio::task::spawn_blocking(move || encode(image, max_side, quality)).await {
            Ok(Ok(processed)) => {
                self.progress(job, 90).await;
                Attempt::Done(processed)
            }
            // The details are the image library's, not the uploader's business.
            Ok(Err(reason)) => {
                tracing::warn!(job = %job.id, reason, "an upload could not be encoded");
                Attempt::Refused(COULD_NOT_ENCODE.into())
            }
            Err(panicked) => {
                tracing::error!(job = %job.id, error = %panicked, "encoding an upload panicked");
                Attempt::Refused(COULD_NOT_ENCODE.into())
            }
        }
    }

    async fn end_processed(&self, job: &ClaimedUpload, processed: Processed) -> &'static str {
        match self.uploads.succeed(job, processed.bytes, processed.extension).await {
            Ok(Some(ended)) => {
                if let Some(restaurant_id) = ended.restaurant_id
                    && let Err(err) = self.restaurants.refresh_cached_menu(restaurant_id).await
                {
                    // The menu version moved on: the cache takes the new menu at its next read.
                    tracing::warn!(restaurant = %restaurant_id, error = %foodfast_store::Chain(&err), "menu cache refresh failed");
                }
                if ended.job.state == foodfast_domain::media::JobState::Succeeded { "succeeded" } else { "refused" }
            }
            Ok(None) => "lost",
            Err(err) => {
                tracing::warn!(job = %job.id, error = %foodfast_store::Chain(&err), "could not store a processed image");
                self.retry_later(job).await;
                "retry"
            }
        }
    }

    async fn end_failed(&self, job: &ClaimedUpload, error: &str) {
        if let Err(err) = self.uploads.fail(job, error).await {
            // Its claim lapses and the job is tried again.
            tracing::warn!(job = %job.id, error = %foodfast_store::Chain(&err), "could not record a failed upload job");
        }
    }

    async fn retry_later(&self, job: &ClaimedUpload) {
        if let Err(err) = self.uploads.retry_later(job, self.config.retry_after).await {
            tracing::warn!(job = %job.id, error = %foodfast_store::Chain(&err), "could not requeue an upload job");
        }
    }

    /// Progress is for people polling: a failure to record it changes nothing.
    async fn progress(&self, job: &ClaimedUpload, percent: u8) {
        if let Err(err) = self.uploads.progress(job, percent).await {
            tracing::debug!(job = %job.id, error = %foodfast_store::Chain(&err), "could not record progress");
        }
    }
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;

    fn png(image: DynamicImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).unwrap();
        bytes
    }

    #[test]
    fn a_large_photo_is_shrunk_to_fit_and_stored_as_jpeg() {
        let photo = DynamicImage::ImageRgb8(RgbImage::from_pixel(2_000, 1_000, Rgb([200, 30, 30])));
        let decoded = decode(&png(photo), ImageType::Png).unwrap();
        let processed = encode(decoded, 1_600, 85).unwrap();
        assert_eq!((processed.width, processed.height, processed.extension), (1_600, 800, "jpg"));
        let back = image::load_from_memory_with_format(&processed.bytes, ImageFormat::Jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (1_600, 800));
        let pixel = back.to_rgb8().get_pixel(800, 400).0;
        assert!(pixel[0] > 150 && pixel[1] < 80, "still red: {pixel:?}");
    }

    #[test]
    fn transparency_is_kept_as_png_and_small_images_keep_their_size() {
        let logo = DynamicImage::ImageRgba8(RgbaImage::from_pixel(300, 200, Rgba([0, 0, 0, 0])));
        let processed = encode(decode(&png(logo), ImageType::Png).unwrap(), 512, 85).unwrap();
        assert_eq!((processed.width, processed.height, processed.extension), (300, 200, "png"));
        let back = image::load_from_memory_with_format(&processed.bytes, ImageFormat::Png).unwrap();
        assert_eq!(back.to_rgba8().get_pixel(10, 10).0[3], 0, "still transparent");
    }

    #[test]
    fn what_does_not_decode_as_announced_is_refused_with_a_reason() {
        let photo = png(DynamicImage::ImageRgb8(RgbImage::new(10, 10)));
        assert_eq!(decode(&photo, ImageType::Jpeg).unwrap_err(), "not a decodable JPEG");
        assert_eq!(decode(&photo[..photo.len() / 2], ImageType::Png).unwrap_err(), "not a decodable PNG");
        assert_eq!(decode(b"hello", ImageType::Webp).unwrap_err(), "not a decodable WebP");
    }

    /// A one-pixel PNG whose header claims `side` x `side`: the decoder reads the size first.
    fn png_claiming(side: u32) -> Vec<u8> {
        let mut header = png(DynamicImage::ImageLuma8(image::GrayImage::new(1, 1)));
        // Rewrite the IHDR size (bytes 16..24) and its CRC.
        header[16..20].copy_from_slice(&side.to_be_bytes());
        header[20..24].copy_from_slice(&side.to_be_bytes());
        let crc = crc32(&header[12..29]);
        header[29..33].copy_from_slice(&crc.to_be_bytes());
        header
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_it_is_decoded() {
        // A 20,000 x 20,000 PNG of one colour compresses to a few hundred kilobytes.
        let refused = decode(&png_claiming(20_000), ImageType::Png).unwrap_err();
        assert!(refused.starts_with("larger than 12000 x 12000 or 40 megapixels"), "{refused}");
    }

    #[test]
    fn a_picture_within_each_side_but_over_the_pixel_count_is_refused_unread() {
        let refused = decode(&png_claiming(7_000), ImageType::Png).unwrap_err();
        assert!(refused.starts_with("larger than"), "{refused}");
    }

    #[test]
    fn a_very_large_photo_shrinks_in_two_steps_to_the_exact_size() {
        let photo = DynamicImage::ImageRgb8(RgbImage::from_pixel(6_000, 4_000, Rgb([30, 200, 30])));
        let processed = encode(photo, 1_600, 85).unwrap();
        assert_eq!((processed.width, processed.height), (1_600, 1_067));
        let back = image::load_from_memory_with_format(&processed.bytes, ImageFormat::Jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (1_600, 1_067));
        let pixel = back.to_rgb8().get_pixel(800, 500).0;
        assert!(pixel[1] > 150 && pixel[0] < 80, "still green: {pixel:?}");
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
