//! Images: recognised by their first bytes (never by the name or the declared type), measured
//! from their header before anything is decoded (so a small file that would unpack into
//! gigabytes is refused), stripped of the metadata that may hold a location (EXIF, XMP, IPTC;
//! a JPEG keeps its orientation), and shrunk into a thumbnail.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 400;

/// The raster formats Hearth shows inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// GIF, animated or not.
    Gif,
    /// WebP.
    Webp,
}

impl Kind {
    /// Recognise an image by its first bytes.
    pub fn sniff(head: &[u8]) -> Option<Kind> {
        if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Kind::Png)
        } else if head.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Kind::Jpeg)
        } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
            Some(Kind::Gif)
        } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
            Some(Kind::Webp)
        } else {
            None
        }
    }

    /// Its media type.
    pub fn mime(self) -> &'static str {
        match self {
            Kind::Png => "image/png",
            Kind::Jpeg => "image/jpeg",
            Kind::Gif => "image/gif",
            Kind::Webp => "image/webp",
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            Kind::Png => ImageFormat::Png,
            Kind::Jpeg => ImageFormat::Jpeg,
            Kind::Gif => ImageFormat::Gif,
            Kind::Webp => ImageFormat::WebP,
        }
    }
}

/// Why an image was not taken as one.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// More pixels than allowed.
    TooLarge,
    /// It does not decode: stored as a plain file.
    Unreadable,
}

/// An image ready to be stored.
#[derive(Debug)]
pub struct Prepared {
    /// The bytes to store: the upload without its location metadata.
    pub bytes: Option<Vec<u8>>,
    /// Width and height as shown (after the orientation is applied).
    pub dimensions: (u32, u32),
    /// A smaller copy and its media type, when the image is larger than a thumbnail or
    /// needs turning; `None`: the image is its own thumbnail.
    pub thumbnail: Option<(Vec<u8>, &'static str)>,
}

/// A decoder for `data` (an image of `kind`) and its size from the header, refused above
/// `max_pixels` before anything is decoded (the decoder's allocations are capped too).
fn measured(
    data: &[u8],
    kind: Kind,
    max_pixels: u64,
) -> Result<(impl ImageDecoder + '_, (u32, u32)), Problem> {
    let mut reader = ImageReader::new(Cursor::new(data));
    reader.set_format(kind.format());
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(64 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|_| Problem::Unreadable)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(Problem::Unreadable);
    }
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(Problem::TooLarge);
    }
    Ok((decoder, (w, h)))
}

/// Measure `data` (an image of `kind`), refuse it above `max_pixels`, strip its metadata and
/// make its thumbnail. `bytes` is `None` when nothing needed stripping.
pub fn prepare(data: &[u8], kind: Kind, max_pixels: u64) -> Result<Prepared, Problem> {
    let (mut decoder, (w, h)) = measured(data, kind, max_pixels)?;
    let orientation = if kind == Kind::Jpeg {
        decoder.orientation().unwrap_or(Orientation::NoTransforms)
    } else {
        Orientation::NoTransforms
    };
    let turned = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let dimensions = if turned { (h, w) } else { (w, h) };
    let thumbnail = if w.max(h) > THUMBNAIL_SIDE || orientation != Orientation::NoTransforms {
        let mut img = DynamicImage::from_decoder(decoder).map_err(|_| Problem::Unreadable)?;
        img.apply_orientation(orientation);
        Some(encode_thumbnail(
            &img.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE),
        )?)
    } else {
        drop(decoder);
        // Small enough to be its own thumbnail, but it must decode to be shown as an image.
        let mut reader = ImageReader::new(Cursor::new(data));
        reader.set_format(kind.format());
        reader.decode().map_err(|_| Problem::Unreadable)?;
        None
    };
    let bytes = match kind {
        Kind::Jpeg => strip_jpeg(data, orientation_tag(orientation)),
        Kind::Png => strip_png(data),
        Kind::Webp => strip_webp(data),
        Kind::Gif => None,
    };
    Ok(Prepared {
        bytes,
        dimensions,
        thumbnail,
    })
}

/// A link preview's picture from `data` (an image of `kind`): turned upright, scaled down to
/// at most [`THUMBNAIL_SIDE`] a side, and always encoded anew as JPEG (transparency on
/// white), so that nothing the site put in the file is kept and each is small. Refused above
/// `max_pixels` before it is decoded.
pub fn preview_picture(
    data: &[u8],
    kind: Kind,
    max_pixels: u64,
) -> Result<(Vec<u8>, &'static str), Problem> {
    let (mut decoder, (w, h)) = measured(data, kind, max_pixels)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|_| Problem::Unreadable)?;
    img.apply_orientation(orientation);
    if w.max(h) > THUMBNAIL_SIDE {
        img = img.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    }
    let mut rgba = img.to_rgba8();
    for p in rgba.pixels_mut() {
        let a = u16::from(p[3]);
        for c in 0..3 {
            p[c] = ((u16::from(p[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
        p[3] = 255;
    }
    jpeg(&DynamicImage::ImageRgba8(rgba).to_rgb8())
}

/// Side of an avatar, in pixels.
pub const AVATAR_SIDE: u32 = 256;

/// An avatar from `data` (an image of `kind`): turned upright, cropped to the centred square
/// and scaled to [`AVATAR_SIDE`]; JPEG, or PNG when it has transparency. Refused above
/// `max_pixels` before it is decoded.
pub fn avatar(
    data: &[u8],
    kind: Kind,
    max_pixels: u64,
) -> Result<(Vec<u8>, &'static str), Problem> {
    let (mut decoder, _) = measured(data, kind, max_pixels)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|_| Problem::Unreadable)?;
    img.apply_orientation(orientation);
    let side = img.width().min(img.height());
    let square = img.crop_imm(
        (img.width() - side) / 2,
        (img.height() - side) / 2,
        side,
        side,
    );
    let scaled = if side > AVATAR_SIDE {
        square.resize_exact(
            AVATAR_SIDE,
            AVATAR_SIDE,
            image::imageops::FilterType::Triangle,
        )
    } else {
        square
    };
    encode_thumbnail(&scaled)
}

/// A thumbnail as JPEG (PNG when it has transparency).
fn encode_thumbnail(img: &DynamicImage) -> Result<(Vec<u8>, &'static str), Problem> {
    if img.color().has_alpha() {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .map_err(|_| Problem::Unreadable)?;
        Ok((out, "image/png"))
    } else {
        jpeg(&img.to_rgb8())
    }
}

/// `rgb` as a JPEG of the quality every picture Hearth makes has.
fn jpeg(rgb: &image::RgbImage) -> Result<(Vec<u8>, &'static str), Problem> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 82)
        .encode_image(rgb)
        .map_err(|_| Problem::Unreadable)?;
    Ok((out, "image/jpeg"))
}

/// The EXIF orientation value (1–8) of `o`.
fn orientation_tag(o: Orientation) -> u16 {
    match o {
        Orientation::NoTransforms => 1,
        Orientation::FlipHorizontal => 2,
        Orientation::Rotate180 => 3,
        Orientation::FlipVertical => 4,
        Orientation::Rotate90FlipH => 5,
        Orientation::Rotate90 => 6,
        Orientation::Rotate270FlipH => 7,
        Orientation::Rotate270 => 8,
    }
}

/// A JPEG without its APP1 (EXIF, XMP) and APP13 (IPTC) segments; when the orientation was
/// not upright, a minimal EXIF segment holding only it takes their place. `None` when there
/// was nothing to remove (or the segments do not parse: the file is kept as it is, since it
/// decoded).
pub fn strip_jpeg(data: &[u8], orientation: u16) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&data[..2]);
    let mut i = 2;
    let mut removed = false;
    let mut inserted = orientation == 1;
    while i + 4 <= data.len() {
        if data[i] != 0xff {
            return None;
        }
        let marker = data[i + 1];
        if marker == 0xff {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xda || (0xd0..=0xd9).contains(&marker) {
            break; // start of scan: the rest is image data
        }
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        let end = i + 2 + len;
        if len < 2 || end > data.len() {
            return None;
        }
        if !inserted && marker != 0xe0 {
            out.extend_from_slice(&orientation_segment(orientation));
            inserted = true;
        }
        if marker == 0xe1 || marker == 0xed {
            removed = true;
        } else {
            out.extend_from_slice(&data[i..end]);
        }
        i = end;
    }
    if !removed {
        return None;
    }
    if !inserted {
        out.extend_from_slice(&orientation_segment(orientation));
    }
    out.extend_from_slice(&data[i..]);
    Some(out)
}

/// An APP1 segment with an EXIF block holding one tag: the orientation.
fn orientation_segment(orientation: u16) -> Vec<u8> {
    let mut s = vec![0xff, 0xe1, 0, 34];
    s.extend_from_slice(b"Exif\0\0MM\0\x2a\0\0\0\x08");
    s.extend_from_slice(&[0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    s.extend_from_slice(&orientation.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    s
}

/// A PNG without its `eXIf` and text chunks (`tEXt`, `zTXt`, `iTXt`: XMP lives there). `None`
/// when there were none.
pub fn strip_png(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(data.get(..8)?);
    let mut i = 8;
    let mut removed = false;
    while i + 12 <= data.len() {
        let len = u32::from_be_bytes(data[i..i + 4].try_into().ok()?) as usize;
        let end = i.checked_add(12)?.checked_add(len)?;
        if end > data.len() {
            return None;
        }
        let kind = &data[i + 4..i + 8];
        if matches!(kind, b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt") {
            removed = true;
        } else {
            out.extend_from_slice(&data[i..end]);
        }
        i = end;
    }
    out.extend_from_slice(&data[i..]);
    removed.then_some(out)
}

/// A WebP without its `EXIF` and `XMP ` chunks (their flags cleared). `None` when there were
/// none.
pub fn strip_webp(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(data.get(..12)?);
    let mut i = 12;
    let mut removed = false;
    while i + 8 <= data.len() {
        let len = u32::from_le_bytes(data[i + 4..i + 8].try_into().ok()?) as usize;
        let end = (i + 8).checked_add(len + (len & 1))?.min(data.len());
        match &data[i..i + 4] {
            b"EXIF" | b"XMP " => removed = true,
            b"VP8X" if end >= i + 9 => {
                let at = out.len() + 8;
                out.extend_from_slice(&data[i..end]);
                out[at] &= !0x0c; // the EXIF and XMP flags
            }
            _ => out.extend_from_slice(&data[i..end]),
        }
        i = end;
    }
    if !removed {
        return None;
    }
    let size = u32::try_from(out.len() - 8).ok()?;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    Some(out)
}

/// A PNG that claims `w` × `h` pixels (a valid header, CRC included) with one tiny chunk of
/// compressed data: what a decompression bomb looks like before it is decoded. For tests.
#[doc(hidden)]
pub fn huge_png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::new_rgb8(w, h);
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn images_are_recognised_by_their_bytes() {
        assert_eq!(Kind::sniff(&png(1, 1)), Some(Kind::Png));
        assert_eq!(Kind::sniff(b"GIF89a...."), Some(Kind::Gif));
        assert_eq!(Kind::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Kind::Webp));
        assert_eq!(Kind::sniff(b"<svg xmlns="), None);
        assert_eq!(Kind::sniff(b"<html>"), None);
    }

    #[test]
    fn small_images_are_their_own_thumbnail_and_large_ones_shrink() {
        let p = prepare(&png(300, 200), Kind::Png, 1_000_000).unwrap();
        assert_eq!(p.dimensions, (300, 200));
        assert!(p.thumbnail.is_none() && p.bytes.is_none());
        let p = prepare(&png(1200, 600), Kind::Png, 1_000_000).unwrap();
        assert_eq!(p.dimensions, (1200, 600));
        let (thumb, mime) = p.thumbnail.unwrap();
        assert_eq!(mime, "image/jpeg");
        let t = image::load_from_memory(&thumb).unwrap();
        assert_eq!((t.width(), t.height()), (400, 200));
    }

    #[test]
    fn too_many_pixels_are_refused_before_decoding() {
        // A 20000 × 20000 header: 400 megapixels, refused from the header alone.
        let data = huge_png_header(20000, 20000);
        assert_eq!(
            prepare(&data, Kind::Png, 50_000_000).unwrap_err(),
            Problem::TooLarge
        );
        assert_eq!(
            prepare(b"\x89PNG\r\n\x1a\nnot really", Kind::Png, 100).unwrap_err(),
            Problem::Unreadable
        );
    }

    #[test]
    fn jpeg_location_goes_and_orientation_stays() {
        let img = DynamicImage::new_rgb8(8, 4);
        let mut plain = Vec::new();
        img.write_to(&mut Cursor::new(&mut plain), ImageFormat::Jpeg)
            .unwrap();
        // Put an EXIF segment with a GPS-looking payload and orientation 6 after SOI.
        let mut exif = orientation_segment(6);
        exif.extend_from_slice(&[0xff, 0xe1, 0, 12]);
        exif.extend_from_slice(b"GPS 51.5 N");
        let mut tagged = plain[..2].to_vec();
        tagged.extend_from_slice(&exif);
        tagged.extend_from_slice(&plain[2..]);
        let p = prepare(&tagged, Kind::Jpeg, 1000).unwrap();
        assert_eq!(p.dimensions, (4, 8), "turned a quarter");
        let stripped = p.bytes.unwrap();
        assert!(!stripped.windows(3).any(|w| w == b"GPS"));
        let mut r = ImageReader::new(Cursor::new(&stripped));
        r.set_format(ImageFormat::Jpeg);
        let mut d = r.into_decoder().unwrap();
        assert_eq!(d.orientation().unwrap(), Orientation::Rotate90);
        assert!(image::load_from_memory(&stripped).is_ok());
        assert!(
            p.thumbnail.is_some(),
            "a turned image gets an upright thumbnail"
        );
    }

    #[test]
    fn avatars_are_centred_squares() {
        let (bytes, mime) = avatar(&png(900, 300), Kind::Png, 1_000_000).unwrap();
        assert_eq!(mime, "image/jpeg");
        let a = image::load_from_memory(&bytes).unwrap();
        assert_eq!((a.width(), a.height()), (256, 256));
        let (bytes, _) = avatar(&png(40, 90), Kind::Png, 1_000_000).unwrap();
        let a = image::load_from_memory(&bytes).unwrap();
        assert_eq!(
            (a.width(), a.height()),
            (40, 40),
            "small ones are not enlarged"
        );
        assert_eq!(
            avatar(&huge_png_header(20000, 20000), Kind::Png, 1_000_000).unwrap_err(),
            Problem::TooLarge
        );
    }

    #[test]
    fn png_text_chunks_go() {
        let data = png(2, 2);
        let mut tagged = data[..33].to_vec(); // signature + IHDR
        let text = b"Commentlocation";
        tagged.extend_from_slice(&(text.len() as u32).to_be_bytes());
        tagged.extend_from_slice(b"tEXt");
        tagged.extend_from_slice(text);
        tagged.extend_from_slice(&[0, 0, 0, 0]);
        tagged.extend_from_slice(&data[33..]);
        let out = strip_png(&tagged).unwrap();
        assert_eq!(out, data);
        assert!(strip_png(&data).is_none());
    }

    #[test]
    fn a_preview_picture_is_always_a_small_new_jpeg() {
        // A transparent pixel carrying 900 KB in a chunk of its own: nothing of it is kept.
        let mut one = Vec::new();
        DynamicImage::new_rgba8(1, 1)
            .write_to(&mut Cursor::new(&mut one), ImageFormat::Png)
            .unwrap();
        let mut padded = one[..33].to_vec();
        let filler = vec![7u8; 900_000];
        padded.extend_from_slice(&(filler.len() as u32).to_be_bytes());
        padded.extend_from_slice(b"zzZz");
        padded.extend_from_slice(&filler);
        padded.extend_from_slice(&[0, 0, 0, 0]);
        padded.extend_from_slice(&one[33..]);
        let (bytes, mime) = preview_picture(&padded, Kind::Png, 1_000_000).unwrap();
        assert_eq!(mime, "image/jpeg");
        assert!(bytes.len() < 2_000, "{} bytes", bytes.len());
        let shown = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert!(shown.get_pixel(0, 0).0.iter().all(|c| *c > 240), "on white");
        // A large one is scaled down to 400 px a side.
        let (bytes, _) = preview_picture(&png(1000, 500), Kind::Png, 1_000_000).unwrap();
        let shown = image::load_from_memory(&bytes).unwrap();
        assert_eq!((shown.width(), shown.height()), (400, 200));
        assert!(matches!(
            preview_picture(&png(1000, 500), Kind::Png, 100_000),
            Err(Problem::TooLarge)
        ));
    }
}
