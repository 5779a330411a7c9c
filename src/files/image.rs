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

/// The most bytes an image allowed `max_pixels` may take decoded: its pixels as 8-bit RGBA.
fn decoded_budget(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(4)
}

/// A decoder for `data` (an image of `kind`) and its size from the header, refused above
/// `max_pixels`, or above that many pixels' worth of 8-bit RGBA once decoded, before
/// anything is decoded (the decoder's allocations are capped too).
fn measured(
    data: &[u8],
    kind: Kind,
    max_pixels: u64,
) -> Result<(impl ImageDecoder + '_, (u32, u32)), Problem> {
    let mut reader = ImageReader::new(Cursor::new(data));
    reader.set_format(kind.format());
    let mut limits = Limits::default();
    limits.max_alloc = Some(decoded_budget(max_pixels).max(64 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|_| Problem::Unreadable)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(Problem::Unreadable);
    }
    // Pixels, and what they take once decoded: a 16-bit image takes twice the memory of an
    // 8-bit one, so it may have half as many.
    if u64::from(w) * u64::from(h) > max_pixels
        || decoder.total_bytes() > decoded_budget(max_pixels)
    {
        return Err(Problem::TooLarge);
    }
    Ok((decoder, (w, h)))
}

/// Measure `data` (an image of `kind`), refuse it above `max_pixels`, strip its metadata and
/// make its thumbnail. `bytes` is `None` when nothing needed stripping; a file whose structure
/// does not parse (though it decodes) is encoded anew, so nothing in it is kept unread.
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
    let decoded = if w.max(h) > THUMBNAIL_SIDE || orientation != Orientation::NoTransforms {
        upright(decoder, orientation)?
    } else {
        drop(decoder);
        // Small enough to be its own thumbnail, but it must decode to be shown as an image.
        let mut reader = ImageReader::new(Cursor::new(data));
        reader.set_format(kind.format());
        reader.decode().map_err(|_| Problem::Unreadable)?
    };
    let stripped = match kind {
        Kind::Jpeg => strip_jpeg(data, orientation_tag(orientation)),
        Kind::Png => strip_png(data),
        Kind::Webp => strip_webp(data),
        Kind::Gif => strip_gif(data),
    };
    let bytes = match stripped {
        Strip::Clean => None,
        Strip::Stripped(bytes) => Some(bytes),
        Strip::Unparsed => Some(encode_as(&decoded, kind)?),
    };
    let thumbnail = if w.max(h) > THUMBNAIL_SIDE || orientation != Orientation::NoTransforms {
        Some(encode_thumbnail(
            &decoded.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE),
        )?)
    } else {
        None
    };
    Ok(Prepared {
        bytes,
        dimensions,
        thumbnail,
    })
}

/// The image `decoder` reads, turned by `orientation`.
fn upright(decoder: impl ImageDecoder, orientation: Orientation) -> Result<DynamicImage, Problem> {
    let mut img = DynamicImage::from_decoder(decoder).map_err(|_| Problem::Unreadable)?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// The image in `data` (of `kind`), turned upright by its own orientation tag, refused above
/// `max_pixels` before it is decoded.
fn decoded_upright(data: &[u8], kind: Kind, max_pixels: u64) -> Result<DynamicImage, Problem> {
    let (mut decoder, _) = measured(data, kind, max_pixels)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    upright(decoder, orientation)
}

/// `img` encoded anew as `kind` (a GIF as its first frame; WebP losslessly): a file made here,
/// holding nothing but pixels.
fn encode_as(img: &DynamicImage, kind: Kind) -> Result<Vec<u8>, Problem> {
    if kind == Kind::Jpeg {
        return jpeg(&img.to_rgb8()).map(|(bytes, _)| bytes);
    }
    let img = if img.color().has_alpha() {
        DynamicImage::ImageRgba8(img.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(img.to_rgb8())
    };
    let mut out = Vec::new();
    if kind == Kind::Gif {
        // The fastest palette search: a large canvas must not cost minutes of a core.
        let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 30);
        encoder
            .encode_frame(image::Frame::new(img.to_rgba8()))
            .map_err(|_| Problem::Unreadable)?;
        drop(encoder);
        return Ok(out);
    }
    img.write_to(&mut Cursor::new(&mut out), kind.format())
        .map_err(|_| Problem::Unreadable)?;
    Ok(out)
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
    let mut img = decoded_upright(data, kind, max_pixels)?;
    if img.width().max(img.height()) > THUMBNAIL_SIDE {
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
    let img = decoded_upright(data, kind, max_pixels)?;
    let side = img.width().min(img.height());
    let alpha = img.color().has_alpha();
    // Scaled from a view of the square: a copy of it would double the memory a large
    // picture takes.
    let square = image::imageops::crop_imm(
        &img,
        (img.width() - side) / 2,
        (img.height() - side) / 2,
        side,
        side,
    );
    let scaled = DynamicImage::ImageRgba8(if side > AVATAR_SIDE {
        image::imageops::resize(
            &*square,
            AVATAR_SIDE,
            AVATAR_SIDE,
            image::imageops::FilterType::Triangle,
        )
    } else {
        square.to_image()
    });
    drop(img);
    if !alpha {
        return encode_thumbnail(&DynamicImage::ImageRgb8(scaled.to_rgb8()));
    }
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

/// What taking an image's metadata out came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Strip {
    /// There was nothing to take out: the file is kept as it came.
    Clean,
    /// The file without its metadata (and without anything after its end).
    Stripped(Vec<u8>),
    /// Its structure does not parse, though it decodes: it must be encoded anew, since what
    /// could not be read could not be taken out either.
    Unparsed,
}

impl Strip {
    fn of(out: Vec<u8>, removed: bool) -> Strip {
        if removed {
            Strip::Stripped(out)
        } else {
            Strip::Clean
        }
    }
}

/// A JPEG without its APP1 (EXIF, XMP), APP13 (IPTC), comment and multi-picture (`MPF`)
/// segments, and without anything after its end (a motion photo's video, the further pictures
/// of a multi-picture file: each may carry a location of its own); when the orientation was
/// not upright, a minimal EXIF segment holding only it takes their place.
pub fn strip_jpeg(data: &[u8], orientation: u16) -> Strip {
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&data[..2]);
    let mut i = 2;
    let mut removed = false;
    let mut inserted = orientation == 1;
    loop {
        if i >= data.len() {
            break; // no end marker: a cut-short file that still decodes, kept whole
        }
        if i + 2 > data.len() || data[i] != 0xff {
            return Strip::Unparsed;
        }
        let marker = data[i + 1];
        match marker {
            0xff => {
                i += 1; // fill byte
                continue;
            }
            0xd9 => {
                out.extend_from_slice(&data[i..i + 2]);
                i += 2;
                break;
            }
            0xd8 => return Strip::Unparsed,
            0x01 | 0xd0..=0xd7 => {
                out.extend_from_slice(&data[i..i + 2]);
                i += 2;
                continue;
            }
            _ => {}
        }
        if i + 4 > data.len() {
            return Strip::Unparsed;
        }
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        let end = i + 2 + len;
        if len < 2 || end > data.len() {
            return Strip::Unparsed;
        }
        if !inserted && marker != 0xe0 {
            out.extend_from_slice(&orientation_segment(orientation));
            inserted = true;
        }
        let payload = &data[i + 4..end];
        let multi_picture = marker == 0xe2 && payload.starts_with(b"MPF\0");
        // APP1 (EXIF, XMP), APP11 (JUMBF: C2PA manifests, which may hold EXIF), APP13
        // (IPTC), comments.
        if matches!(marker, 0xe1 | 0xeb | 0xed | 0xfe) || multi_picture {
            removed = true;
        } else {
            out.extend_from_slice(&data[i..end]);
        }
        i = end;
        if marker == 0xda {
            // Entropy-coded data runs to the next marker that is not a stuffed 0xff (0xff00),
            // a restart marker or a fill byte.
            let mut j = i;
            while j < data.len() {
                if data[j] == 0xff
                    && j + 1 < data.len()
                    && !matches!(data[j + 1], 0x00 | 0xd0..=0xd7 | 0xff)
                {
                    break;
                }
                j += 1;
            }
            out.extend_from_slice(&data[i..j]);
            i = j;
        }
    }
    if i < data.len() {
        removed = true; // whatever follows the end of the image
    }
    if !removed {
        return Strip::Clean;
    }
    if !inserted {
        out.extend_from_slice(&orientation_segment(orientation));
    }
    Strip::Stripped(out)
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

/// A PNG without its `eXIf`, text (`tEXt`, `zTXt`, `iTXt`: XMP lives there) and C2PA
/// (`caBX`) chunks, and without anything after its `IEND`.
pub fn strip_png(data: &[u8]) -> Strip {
    let Some(signature) = data.get(..8) else {
        return Strip::Unparsed;
    };
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(signature);
    let mut i = 8;
    let mut removed = false;
    loop {
        if i == data.len() {
            return Strip::of(out, removed); // no IEND: a cut-short file that still decodes
        }
        let Some(header) = data.get(i..i + 8) else {
            return Strip::Unparsed;
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let Some(end) = (i + 12).checked_add(len).filter(|e| *e <= data.len()) else {
            return Strip::Unparsed;
        };
        let kind = &header[4..8];
        if matches!(kind, b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt" | b"caBX") {
            removed = true;
        } else {
            out.extend_from_slice(&data[i..end]);
        }
        i = end;
        if kind == b"IEND" {
            break;
        }
    }
    Strip::of(out, removed || i < data.len())
}

/// A WebP without its `EXIF`, `XMP ` and `C2PA` chunks (the flags of the first two cleared),
/// and without anything after the length its header gives. One whose length leaves out every
/// picture chunk does not parse.
pub fn strip_webp(data: &[u8]) -> Strip {
    let Some(header) = data.get(..12) else {
        return Strip::Unparsed;
    };
    let riff_end = (u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize)
        .saturating_add(8);
    if riff_end > data.len() || riff_end < 20 {
        return Strip::Unparsed;
    }
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(header);
    let mut i = 12;
    let mut removed = riff_end < data.len();
    let mut pixels = false;
    while i < riff_end {
        let Some(chunk) = data.get(i..i + 8).filter(|_| i + 8 <= riff_end) else {
            return Strip::Unparsed;
        };
        let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]) as usize;
        let end = (i + 8).saturating_add(len).saturating_add(len & 1);
        if end > riff_end {
            return Strip::Unparsed;
        }
        pixels |= matches!(&chunk[..4], b"VP8 " | b"VP8L" | b"ANMF");
        match &chunk[..4] {
            b"EXIF" | b"XMP " | b"C2PA" => removed = true,
            b"VP8X" if end >= i + 9 => {
                let at = out.len() + 8;
                out.extend_from_slice(&data[i..end]);
                out[at] &= !0x0c; // the EXIF and XMP flags
            }
            _ => out.extend_from_slice(&data[i..end]),
        }
        i = end;
    }
    if !pixels {
        return Strip::Unparsed; // a size that leaves the picture out: not kept as it says
    }
    if !removed {
        return Strip::Clean;
    }
    let Ok(size) = u32::try_from(out.len() - 8) else {
        return Strip::Unparsed;
    };
    out[4..8].copy_from_slice(&size.to_le_bytes());
    Strip::Stripped(out)
}

/// A GIF without its comments, its text blocks (which browsers do not draw), its application
/// blocks other than looping (`NETSCAPE2.0`, `ANIMEXTS1.0`) and the colour profile
/// (`ICCRGBG1012`) (XMP lives in one), and anything after its trailer. Frames, palettes and
/// timing stay as they were.
pub fn strip_gif(data: &[u8]) -> Strip {
    /// The end of the run of sub-blocks starting at `i` (after its zero terminator).
    fn sub_blocks(data: &[u8], mut i: usize) -> Option<usize> {
        loop {
            let len = usize::from(*data.get(i)?);
            i += 1 + len;
            if len == 0 {
                return Some(i);
            }
        }
    }
    fn table(packed: u8) -> usize {
        if packed & 0x80 != 0 {
            3 << ((packed & 7) + 1)
        } else {
            0
        }
    }
    let Some(screen) = data.get(..13) else {
        return Strip::Unparsed;
    };
    let mut i = 13 + table(screen[10]);
    if i > data.len() {
        return Strip::Unparsed;
    }
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&data[..i]);
    let mut removed = false;
    loop {
        let Some(&block) = data.get(i) else {
            return Strip::of(out, removed); // no trailer: a cut-short file that still decodes
        };
        let end = match block {
            0x3b => {
                out.push(0x3b);
                i += 1;
                break;
            }
            0x2c => {
                let Some(descriptor) = data.get(i..i + 10) else {
                    return Strip::Unparsed;
                };
                // Descriptor, local palette, the code size byte, then the pixels.
                sub_blocks(data, i + 10 + table(descriptor[9]) + 1)
            }
            0x21 => {
                let label = data.get(i + 1).copied();
                let end = sub_blocks(data, i + 2);
                // Frame timing, looping and the colour profile stay; comments, text
                // (browsers do not draw it) and other applications' blocks go.
                let kept = match label {
                    Some(0xf9) => true,
                    Some(0xff) => matches!(
                        data.get(i + 2..i + 14),
                        Some(b"\x0bNETSCAPE2.0")
                            | Some(b"\x0bANIMEXTS1.0")
                            | Some(b"\x0bICCRGBG1012")
                    ),
                    _ => false,
                };
                if !kept {
                    let Some(end) = end.filter(|e| *e <= data.len()) else {
                        return Strip::Unparsed;
                    };
                    removed = true;
                    i = end;
                    continue;
                }
                end
            }
            _ => return Strip::Unparsed,
        };
        let Some(end) = end.filter(|e| *e <= data.len()) else {
            return Strip::Unparsed;
        };
        out.extend_from_slice(&data[i..end]);
        i = end;
    }
    Strip::of(out, removed || i < data.len())
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
    fn deep_images_count_what_they_take_decoded() {
        // 16-bit RGBA: 8 bytes a pixel, twice what the budget allows per allowed pixel.
        let deep = |w: u32, h: u32| {
            let img = DynamicImage::ImageRgba16(image::ImageBuffer::new(w, h));
            let mut out = Vec::new();
            img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
                .unwrap();
            out
        };
        let max = 100 * 100;
        // Within the pixels but not the bytes: refused from the header, like an avatar.
        assert_eq!(
            prepare(&deep(100, 100), Kind::Png, max).unwrap_err(),
            Problem::TooLarge
        );
        assert_eq!(
            avatar(&deep(100, 100), Kind::Png, max).unwrap_err(),
            Problem::TooLarge
        );
        // Half the pixels fit.
        let p = prepare(&deep(100, 50), Kind::Png, max).unwrap();
        assert_eq!(p.dimensions, (100, 50));
        let (bytes, mime) = avatar(&deep(100, 50), Kind::Png, max).unwrap();
        assert_eq!(mime, "image/png");
        let a = image::load_from_memory(&bytes).unwrap();
        assert_eq!((a.width(), a.height()), (50, 50));
        // The same pixels at 8 bits fit.
        assert!(prepare(&png(100, 100), Kind::Png, max).is_ok());
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
        assert_eq!(strip_png(&tagged), Strip::Stripped(data.clone()));
        assert_eq!(strip_png(&data), Strip::Clean);
        // Whatever follows IEND goes too.
        let mut trailed = data.clone();
        trailed.extend_from_slice(b"PK\x03\x04 GPS 51.5 N");
        assert_eq!(strip_png(&trailed), Strip::Stripped(data.clone()));
        // A chunk cut short does not parse.
        let mut cut = tagged[..tagged.len() - 12].to_vec(); // without IEND
        cut.extend_from_slice(&[0, 0, 1, 0, b't']);
        assert_eq!(strip_png(&cut), Strip::Unparsed);
    }

    fn jpeg_of(w: u32, h: u32) -> Vec<u8> {
        let mut plain = Vec::new();
        DynamicImage::new_rgb8(w, h)
            .write_to(&mut Cursor::new(&mut plain), ImageFormat::Jpeg)
            .unwrap();
        plain
    }

    #[test]
    fn what_follows_a_jpeg_goes_and_a_jpeg_that_does_not_parse_is_made_anew() {
        let plain = jpeg_of(16, 8);
        assert_eq!(strip_jpeg(&plain, 1), Strip::Clean);
        // A motion photo: the video (with a location of its own) follows the picture.
        let mut motion = plain.clone();
        motion.extend_from_slice(b"\0\0\0\x18ftypmp42 GPS 51.5 N");
        assert_eq!(strip_jpeg(&motion, 1), Strip::Stripped(plain.clone()));
        // Comments and multi-picture indexes go with the EXIF.
        let mut tagged = plain[..2].to_vec();
        tagged.extend_from_slice(&[0xff, 0xfe, 0, 12]);
        tagged.extend_from_slice(b"GPS 51.5 N");
        tagged.extend_from_slice(&[0xff, 0xe2, 0, 8]);
        tagged.extend_from_slice(b"MPF\0II");
        tagged.extend_from_slice(&plain[2..]);
        assert_eq!(strip_jpeg(&tagged, 1), Strip::Stripped(plain.clone()));
        // Restart markers and stuffed bytes in the scan are image data, not the end.
        let mut scan = plain[..plain.len() - 2].to_vec();
        let tail = [0xff, 0x00, 0xff, 0xd3, 0x12, 0xff, 0xff, 0xd9];
        scan.extend_from_slice(&tail);
        assert_eq!(strip_jpeg(&scan, 1), Strip::Clean);
        // Segments that do not parse: nothing is kept unread.
        let mut broken = plain[..2].to_vec();
        broken.extend_from_slice(&[0xff, 0xe1, 0, 12]);
        broken.extend_from_slice(b"GPS 51.5 N");
        broken.extend_from_slice(&[0x00, 0x00]);
        broken.extend_from_slice(&plain[2..]);
        assert_eq!(strip_jpeg(&broken, 1), Strip::Unparsed);
        // It decodes all the same, so it is stored encoded anew, without the segment.
        let p = prepare(&broken, Kind::Jpeg, 1000).unwrap();
        let anew = p.bytes.expect("encoded anew");
        assert!(!anew.windows(3).any(|w| w == b"GPS"));
        assert_eq!(strip_jpeg(&anew, 1), Strip::Clean);
        assert_eq!(p.dimensions, (16, 8));
        let shown = image::load_from_memory(&anew).unwrap();
        assert_eq!((shown.width(), shown.height()), (16, 8));
        assert_eq!(strip_jpeg(&plain[..plain.len() - 2], 1), Strip::Clean);
    }

    #[test]
    fn gif_comments_and_foreign_blocks_go_and_the_loop_stays() {
        use image::codecs::gif::{GifEncoder, Repeat};
        let mut plain = Vec::new();
        {
            let mut enc = GifEncoder::new(&mut plain);
            enc.set_repeat(Repeat::Infinite).unwrap();
            let frames = (0..2).map(|i| {
                image::Frame::new(image::RgbaImage::from_pixel(
                    4,
                    3,
                    image::Rgba([i * 200, 10, 10, 255]),
                ))
            });
            enc.encode_frames(frames).unwrap();
        }
        assert!(plain.windows(11).any(|w| w == b"NETSCAPE2.0"));
        assert_eq!(strip_gif(&plain), Strip::Clean);
        let at = 13
            + if plain[10] & 0x80 != 0 {
                3 << ((plain[10] & 7) + 1)
            } else {
                0
            };
        let mut tagged = plain[..at].to_vec();
        tagged.extend_from_slice(&[0x21, 0xfe, 10]);
        tagged.extend_from_slice(b"GPS 51.5 N");
        tagged.push(0);
        tagged.extend_from_slice(&[0x21, 0xff, 11]);
        tagged.extend_from_slice(b"XMP DataXMP");
        tagged.extend_from_slice(&[4]);
        tagged.extend_from_slice(b"<gps");
        tagged.push(0);
        tagged.extend_from_slice(&plain[at..]);
        tagged.extend_from_slice(b"trailing GPS");
        let Strip::Stripped(out) = strip_gif(&tagged) else {
            panic!("not stripped");
        };
        assert_eq!(out, plain);
        assert!(prepare(&tagged, Kind::Gif, 1000).unwrap().bytes == Some(plain.clone()));
        assert_eq!(strip_gif(&plain[..20]), Strip::Unparsed);
        assert_eq!(strip_gif(b"GIF89a"), Strip::Unparsed);
        // Junk where the next block should start: the first frame, encoded anew.
        let mut junk = plain.clone();
        *junk.last_mut().unwrap() = 0x99;
        junk.extend_from_slice(b"GPS 51.5 N");
        assert_eq!(strip_gif(&junk), Strip::Unparsed);
        let p = prepare(&junk, Kind::Gif, 1000).unwrap();
        let anew = p.bytes.expect("encoded anew");
        assert_eq!(Kind::sniff(&anew), Some(Kind::Gif));
        assert!(!anew.windows(3).any(|w| w == b"GPS"));
        let shown = image::load_from_memory(&anew).unwrap();
        assert_eq!((shown.width(), shown.height()), (4, 3));
    }

    #[test]
    fn webp_trailing_bytes_go() {
        let mut plain = Vec::new();
        DynamicImage::new_rgb8(3, 3)
            .write_to(&mut Cursor::new(&mut plain), ImageFormat::WebP)
            .unwrap();
        assert_eq!(strip_webp(&plain), Strip::Clean);
        let mut trailed = plain.clone();
        trailed.extend_from_slice(b"GPS 51.5 N");
        assert_eq!(strip_webp(&trailed), Strip::Stripped(plain.clone()));
        assert_eq!(strip_webp(&plain[..plain.len() - 1]), Strip::Unparsed);
        // A RIFF size that leaves the picture out is not taken at its word.
        let mut short = plain.clone();
        short[4..8].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(strip_webp(&short), Strip::Unparsed);
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
