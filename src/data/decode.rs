//! Decoding one photo to 8-bit RGB at a working resolution (its shorter side at most
//! `short_side`), as fast as a photo collection needs:
//! - JPEGs (with the `turbojpeg` feature) are decoded by libjpeg-turbo, downscaled in the DCT
//!   domain by 1/2, 1/4 or 1/8 while staying at least the target size (as Pillow's
//!   `Image.draft`), so a 12-megapixel photo never exists at full size;
//! - other formats (and JPEGs libjpeg-turbo refuses, e.g. CMYK) go through the `image` crate;
//! - the last step is an antialiased bilinear resize to the exact size (`fast_image_resize`,
//!   SIMD), and the EXIF orientation of phone photos is applied.
//!
//! Images wider or taller than `MAX_DECODE_SIDE` or needing more than `MAX_DECODE_BYTES` are
//! refused before anything is allocated for them (a few KB of PNG can claim 12000x12000).
use fast_image_resize as fr;

use super::Image;
use crate::error::{Error, Result};

/// Largest width or height decoded.
pub const MAX_DECODE_SIDE: u32 = 10_000;
/// Most memory one decode may allocate.
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

fn too_large(name: &str, what: &dyn std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "'{name}' is larger than the decoding limit ({MAX_DECODE_SIDE} px per side, {} MiB): {what}",
        MAX_DECODE_BYTES >> 20
    ))
}

/// The size whose shorter side is `short_side` (0 or a smaller image: unchanged).
pub fn fit_short_side(width: usize, height: usize, short_side: usize) -> (usize, usize) {
    let short = width.min(height);
    if short_side == 0 || short <= short_side {
        return (width, height);
    }
    let s = short_side as f64 / short as f64;
    (((width as f64 * s).round() as usize).max(1), ((height as f64 * s).round() as usize).max(1))
}

/// Decodes a file's bytes (`name` for messages) so its shorter side is at most `short_side`
/// (0 = full size).
pub fn decode_bytes(bytes: &[u8], name: &str, short_side: usize) -> Result<Image> {
    let orientation = exif_orientation(bytes);
    let img = match fast_jpeg(bytes, name, short_side)? {
        Some(img) => img,
        None => decode_any(bytes, name)?,
    };
    let (w, h) = fit_short_side(img.width, img.height, short_side);
    let img = if (w, h) == (img.width, img.height) { img } else { resize(img, w, h)? };
    orient(img, orientation)
}

/// Any format the `image` crate reads, at full size, within the limits.
fn decode_any(bytes: &[u8], name: &str) -> Result<Image> {
    let bad = |e: &dyn std::fmt::Display| Error::Invalid(format!("cannot decode '{name}': {e}"));
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| bad(&e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => too_large(name, &e),
        e => bad(&e),
    })?;
    let img = img.to_rgb8();
    Image::new(img.width() as usize, img.height() as usize, img.into_raw())
}

fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// libjpeg-turbo with the largest DCT scaling (1/8, 1/4, 1/2) that keeps the shorter side at
/// least `short_side`. None: not a JPEG, or one libjpeg-turbo does not decode to RGB (the
/// `image` crate then tries; its error is the one reported).
#[cfg(feature = "turbojpeg")]
fn fast_jpeg(bytes: &[u8], name: &str, short_side: usize) -> Result<Option<Image>> {
    use turbojpeg::{Decompressor, PixelFormat, ScalingFactor};
    if !is_jpeg(bytes) {
        return Ok(None);
    }
    let Ok(mut d) = Decompressor::new() else { return Ok(None) };
    let Ok(header) = d.read_header(bytes) else { return Ok(None) };
    if header.width > MAX_DECODE_SIDE as usize || header.height > MAX_DECODE_SIDE as usize {
        return Err(too_large(name, &format!("{}x{}", header.width, header.height)));
    }
    let short = header.width.min(header.height);
    let factor = [ScalingFactor::ONE_EIGHTH, ScalingFactor::ONE_QUARTER, ScalingFactor::ONE_HALF]
        .into_iter()
        .find(|f| short_side > 0 && f.scale(short) >= short_side)
        .unwrap_or(ScalingFactor::ONE);
    if d.set_scaling_factor(factor).is_err() {
        return Ok(None);
    }
    let scaled = header.scaled(factor);
    if (scaled.width * scaled.height * 3) as u64 > MAX_DECODE_BYTES {
        return Err(too_large(name, &format!("{}x{}", header.width, header.height)));
    }
    let mut out = turbojpeg::Image {
        pixels: vec![0u8; scaled.width * scaled.height * 3],
        width: scaled.width,
        pitch: scaled.width * 3,
        height: scaled.height,
        format: PixelFormat::RGB,
    };
    if d.decompress(bytes, out.as_deref_mut()).is_err() {
        return Ok(None);
    }
    Image::new(scaled.width, scaled.height, out.pixels).map(Some)
}

#[cfg(not(feature = "turbojpeg"))]
fn fast_jpeg(_: &[u8], _: &str, _: usize) -> Result<Option<Image>> {
    Ok(None)
}

/// Antialiased bilinear resize (Pillow's BILINEAR) to `width` x `height`.
pub fn resize(img: Image, width: usize, height: usize) -> Result<Image> {
    let bad = |e: &dyn std::fmt::Display| Error::Invalid(format!("resize to {width}x{height}: {e}"));
    let src = fr::images::Image::from_vec_u8(img.width as u32, img.height as u32, img.rgb, fr::PixelType::U8x3)
        .map_err(|e| bad(&e))?;
    let mut dst = fr::images::Image::new(width as u32, height as u32, fr::PixelType::U8x3);
    let options = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
    fr::Resizer::new().resize(&src, &mut dst, &options).map_err(|e| bad(&e))?;
    Image::new(width, height, dst.into_vec())
}

/// The EXIF orientation of a JPEG (phone photos are stored sideways with a tag saying so),
/// read from its APP1 segment without decoding anything.
fn exif_orientation(bytes: &[u8]) -> Option<image::metadata::Orientation> {
    if !is_jpeg(bytes) {
        return None;
    }
    let mut at = 2;
    // Segments: 0xFF, marker, big-endian length (counting itself), until the scan starts.
    while at + 4 <= bytes.len() && bytes[at] == 0xFF {
        let marker = bytes[at + 1];
        let len = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        if marker == 0xDA || len < 2 {
            return None;
        }
        let body = bytes.get(at + 4..at + 2 + len)?;
        if marker == 0xE1 && body.starts_with(b"Exif\0\0") {
            return tiff_orientation(&body[6..]).and_then(image::metadata::Orientation::from_exif);
        }
        at += 2 + len;
    }
    None
}

/// Tag 0x0112 of the first IFD of a TIFF block (either byte order).
fn tiff_orientation(tiff: &[u8]) -> Option<u8> {
    let big = match tiff.get(..4)? {
        b"MM\0*" => true,
        b"II*\0" => false,
        _ => return None,
    };
    let u16_at = |i: usize| {
        tiff.get(i..i + 2)
            .map(|b| if big { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) })
    };
    let u32_at = |i: usize| {
        tiff.get(i..i + 4).map(|b| {
            let a = [b[0], b[1], b[2], b[3]];
            if big {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        })
    };
    let ifd = u32_at(4)? as usize;
    for e in 0..u16_at(ifd)? as usize {
        let entry = ifd + 2 + 12 * e;
        if u16_at(entry)? == 0x0112 {
            return u8::try_from(u16_at(entry + 8)?).ok();
        }
    }
    None
}

fn orient(img: Image, orientation: Option<image::metadata::Orientation>) -> Result<Image> {
    use image::metadata::Orientation;
    let Some(o) = orientation.filter(|o| *o != Orientation::NoTransforms) else { return Ok(img) };
    let (w, h) = (img.width, img.height);
    let buf = image::RgbImage::from_raw(w as u32, h as u32, img.rgb)
        .ok_or_else(|| Error::Invalid(format!("an image of {w}x{h} with the wrong number of bytes")))?;
    let mut dynamic = image::DynamicImage::ImageRgb8(buf);
    dynamic.apply_orientation(o);
    let rgb = dynamic.into_rgb8();
    Image::new(rgb.width() as usize, rgb.height() as usize, rgb.into_raw())
}

/// Encodes a cache record's pixels as JPEG (quality 90, 4:2:0, as FFCV stores ImageNet).
pub fn encode_jpeg(img: &Image, quality: u8) -> Result<Vec<u8>> {
    #[cfg(feature = "turbojpeg")]
    {
        let view = turbojpeg::Image {
            pixels: img.rgb.as_slice(),
            width: img.width,
            pitch: img.width * 3,
            height: img.height,
            format: turbojpeg::PixelFormat::RGB,
        };
        if let Ok(buf) = turbojpeg::compress(view, quality as i32, turbojpeg::Subsamp::Sub2x2) {
            return Ok(buf.to_vec());
        }
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode(&img.rgb, img.width as u32, img.height as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::Invalid(format!("JPEG encoding failed: {e}")))?;
    Ok(out)
}

/// Decodes a cache record written by `encode_jpeg` at its full size.
pub fn decode_jpeg_record(bytes: &[u8]) -> Result<Image> {
    #[cfg(feature = "turbojpeg")]
    if let Ok(img) = turbojpeg::decompress(bytes, turbojpeg::PixelFormat::RGB) {
        return Image::new(img.width, img.height, img.pixels);
    }
    decode_any(bytes, "cache record")
}
