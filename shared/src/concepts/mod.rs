//! The concept world: seeded images of objects built from parts, with per-pixel labels for
//! object, part, colour and texture — what concept IoU (Network Dissection) needs, without the
//! Broden download.
//!
//! Image `i` of seed `s` depends on `(s, i)` only, and is computed with additions,
//! multiplications, divisions and comparisons of f64 (no `sin`/`cos` from a platform libm), so
//! the bytes are the same natively and in wasm32.

pub mod vocab;

use crate::rng::SplitMix as Rng;
use vocab::{Shape, COLOURS, OBJECTS, PARTS, TEXTURES};

/// Image side lengths the generator supports.
pub const SIDES: [usize; 2] = [32, 64];

/// One part as drawn: its type, shape in its object frame, the frame, colours and texture.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnPart {
    /// Index into [`vocab::PARTS`].
    pub part: usize,
    pub shape: Shape,
    pub frame: Frame,
    /// Indices into [`vocab::COLOURS`].
    pub colour: usize,
    pub secondary: usize,
    /// Index into [`vocab::TEXTURES`].
    pub texture: usize,
    /// Texture phase, in pixels.
    pub phase: usize,
    /// Part of the main object (false: background clutter).
    pub in_object: bool,
}

/// Where an object frame sits in the image: centre (pixels), scale (pixels per unit), rotation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    pub cx: f64,
    pub cy: f64,
    pub scale: f64,
    pub cos: f64,
    pub sin: f64,
}

impl Frame {
    /// The object-frame coordinates of the centre of pixel `(x, y)`.
    pub fn to_local(&self, x: usize, y: usize) -> (f64, f64) {
        let (dx, dy) = (x as f64 + 0.5 - self.cx, y as f64 + 0.5 - self.cy);
        ((self.cos * dx + self.sin * dy) / self.scale, (self.cos * dy - self.sin * dx) / self.scale)
    }
}

impl DrawnPart {
    /// Whether this part covers pixel `(x, y)`.
    pub fn covers(&self, x: usize, y: usize) -> bool {
        let (u, v) = self.frame.to_local(x, y);
        self.shape.contains(u, v)
    }

    /// The colour this part paints at pixel `(x, y)`, and whether it is the secondary one.
    pub fn colour_at(&self, x: usize, y: usize, side: usize) -> usize {
        let cell = (side / 16).max(2); // 2 px at 32x32, 4 px at 64x64
        let (x, y) = (x + self.phase, y + self.phase * 3);
        let second = match TEXTURES[self.texture] {
            "stripes" => ((x + y) / cell) % 2 == 1,
            "dots" => x % (2 * cell) < cell && y % (2 * cell) < cell,
            "checker" => (x / cell + y / cell) % 2 == 1,
            _ => false,
        };
        if second {
            self.secondary
        } else {
            self.colour
        }
    }
}

/// A generated image and its labels. Pixel `p = y * side + x`; the masks are bit sets.
#[derive(Clone, Debug, PartialEq)]
pub struct ConceptImage {
    pub side: usize,
    /// The object class (index into [`vocab::OBJECTS`]).
    pub class: usize,
    /// RGB, channel-major (`[3, side, side]`), like the datasets.
    pub pixels: Vec<u8>,
    /// Bit `c` when the pixel shows object class `c`.
    pub object: Vec<u16>,
    /// Bit `k` for every part type `k` of the object whose shape covers the pixel (multi-label:
    /// a window on a wall is both), or the visible clutter part.
    pub parts: Vec<u32>,
    /// The one colour painted at the pixel.
    pub colour: Vec<u16>,
    /// The texture of the visible part (no bit on the background).
    pub texture: Vec<u8>,
    /// What was drawn, back to front.
    pub drawn: Vec<DrawnPart>,
    /// The background colour.
    pub background: usize,
}

/// The generator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConceptWorld {
    pub side: usize,
}

impl Default for ConceptWorld {
    fn default() -> Self {
        Self { side: 32 }
    }
}

/// `(cos t, sin t)` by Taylor series: exact arithmetic only, so every platform agrees.
/// Accurate to ~1e-12 for |t| <= 0.8.
fn cos_sin(t: f64) -> (f64, f64) {
    let t2 = t * t;
    let (mut c, mut s, mut term_c, mut term_s) = (1.0, t, 1.0, t);
    for k in 1..=8 {
        let k = k as f64;
        term_c = -term_c * t2 / ((2.0 * k - 1.0) * (2.0 * k));
        term_s = -term_s * t2 / ((2.0 * k) * (2.0 * k + 1.0));
        c += term_c;
        s += term_s;
    }
    (c, s)
}

impl ConceptWorld {
    pub fn new(side: usize) -> crate::Result<Self> {
        if !SIDES.contains(&side) {
            return Err(crate::Error::Concepts(format!("images are {SIDES:?} pixels a side, not {side}")));
        }
        Ok(Self { side })
    }

    pub fn classes(&self) -> Vec<String> {
        OBJECTS.iter().map(|o| o.name.to_string()).collect()
    }

    /// Image `index` of `seed`; its class is `index % classes` (balanced splits).
    pub fn generate(&self, seed: u64, index: u64) -> ConceptImage {
        let side = self.side;
        let s = side as f64;
        let class = (index % OBJECTS.len() as u64) as usize;
        let mut rng = Rng::new(seed, index);
        let background = if rng.below(2) == 0 { 10 } else { 11 };
        let mut drawn = Vec::new();
        let random_part = |rng: &mut Rng, part: usize, shape: Shape, frame: Frame, in_object: bool| {
            let colour = rng.pick(PARTS[part].colours);
            let mut secondary = rng.below(10);
            if secondary == colour {
                secondary = (secondary + 1 + rng.below(9)) % 10;
            }
            // Half the parts are plain; the rest get one of the patterned textures.
            let texture = if rng.below(2) == 0 { 0 } else { 1 + rng.below(TEXTURES.len() - 1) };
            DrawnPart { part, shape, frame, colour, secondary, texture, phase: rng.below(8), in_object }
        };
        // Clutter: 1-3 parts of random objects, small, anywhere, behind the object.
        for _ in 0..1 + rng.below(3) {
            let source = &OBJECTS[rng.below(OBJECTS.len())];
            let placement = &source.parts[rng.below(source.parts.len())];
            let scale = s * rng.range(0.14, 0.22);
            let (c, sn) = cos_sin(rng.range(-0.8, 0.8));
            let frame = Frame { cx: rng.range(0.0, s), cy: rng.range(0.0, s), scale, cos: c, sin: sn };
            drawn.push(random_part(&mut rng, placement.part, placement.shape, frame, false));
        }
        // The object: scale, position and rotation jitter; it stays mostly inside the image.
        let scale = s * rng.range(0.27, 0.4);
        let margin = 0.8 * scale;
        let (c, sn) = cos_sin(rng.range(-0.45, 0.45));
        let frame = Frame { cx: rng.range(margin, s - margin), cy: rng.range(margin, s - margin), scale, cos: c, sin: sn };
        for placement in OBJECTS[class].parts {
            drawn.push(random_part(&mut rng, placement.part, placement.shape, frame, true));
        }

        let n = side * side;
        let mut image = ConceptImage {
            side,
            class,
            pixels: vec![0; 3 * n],
            object: vec![0; n],
            parts: vec![0; n],
            colour: vec![0; n],
            texture: vec![0; n],
            drawn,
            background,
        };
        for y in 0..side {
            for x in 0..side {
                let p = y * side + x;
                let mut colour = background;
                let (mut parts, mut object, mut texture) = (0u32, 0u16, 0u8);
                for d in &image.drawn {
                    if !d.covers(x, y) {
                        continue;
                    }
                    colour = d.colour_at(x, y, side);
                    texture = 1 << d.texture;
                    if d.in_object {
                        // The object hides the clutter under it; its own parts accumulate.
                        if object == 0 {
                            parts = 0;
                        }
                        object = 1 << class;
                        parts |= 1 << d.part;
                    } else {
                        parts = 1 << d.part;
                    }
                }
                image.parts[p] = parts;
                image.object[p] = object;
                image.texture[p] = texture;
                image.colour[p] = 1 << colour;
                for ch in 0..3 {
                    image.pixels[ch * n + p] = COLOURS[colour].1[ch];
                }
            }
        }
        image
    }
}

/// FNV-1a over the bytes of `images` (pixels and every mask), to compare generators across
/// platforms.
pub fn fingerprint(images: &[ConceptImage]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for im in images {
        im.pixels.iter().for_each(|&b| eat(b));
        for p in 0..im.side * im.side {
            im.object[p].to_le_bytes().into_iter().for_each(&mut eat);
            im.parts[p].to_le_bytes().into_iter().for_each(&mut eat);
            im.colour[p].to_le_bytes().into_iter().for_each(&mut eat);
            eat(im.texture[p]);
        }
    }
    h
}
