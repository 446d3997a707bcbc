//! The vocabulary of the concept world: colours, textures, part types and object classes.
//! `docs/concept-world.md` lists it with pictures; the tables here are the definition.

/// Colours with their RGB values. Every painted pixel has exactly one.
pub const COLOURS: &[(&str, [u8; 3])] = &[
    ("red", [210, 40, 40]),
    ("orange", [240, 140, 30]),
    ("yellow", [240, 220, 50]),
    ("green", [50, 160, 60]),
    ("blue", [40, 80, 210]),
    ("purple", [140, 60, 180]),
    ("brown", [120, 75, 40]),
    ("black", [25, 25, 25]),
    ("white", [245, 245, 245]),
    ("grey", [128, 128, 128]),
    ("sky", [170, 210, 240]),
    ("sand", [225, 205, 160]),
];

/// Textures: how a part's primary and secondary colours are laid out.
pub const TEXTURES: &[&str] = &["solid", "stripes", "dots", "checker"];

/// A geometric primitive in the object's unit frame (x right, y down, both in [-1, 1]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// Centre and radius.
    Circle { cx: f64, cy: f64, r: f64 },
    /// Centre and radii.
    Ellipse { cx: f64, cy: f64, rx: f64, ry: f64 },
    /// Axis-aligned in the object frame: left, top, right, bottom.
    Rect { x0: f64, y0: f64, x1: f64, y1: f64 },
    /// Three corners.
    Triangle { a: (f64, f64), b: (f64, f64), c: (f64, f64) },
}

impl Shape {
    /// Whether point `(x, y)` of the object frame is inside.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        match *self {
            Shape::Circle { cx, cy, r } => (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r,
            Shape::Ellipse { cx, cy, rx, ry } => {
                let (u, v) = ((x - cx) / rx, (y - cy) / ry);
                u * u + v * v <= 1.0
            }
            Shape::Rect { x0, y0, x1, y1 } => x >= x0 && x <= x1 && y >= y0 && y <= y1,
            Shape::Triangle { a, b, c } => {
                let side = |p: (f64, f64), q: (f64, f64)| (q.0 - p.0) * (y - p.1) - (q.1 - p.1) * (x - p.0);
                let (d1, d2, d3) = (side(a, b), side(b, c), side(c, a));
                let neg = d1 < 0.0 || d2 < 0.0 || d3 < 0.0;
                let pos = d1 > 0.0 || d2 > 0.0 || d3 > 0.0;
                !(neg && pos)
            }
        }
    }
}

/// A part type: its name, the primitive it is drawn as, and the colours it may take.
pub struct PartType {
    pub name: &'static str,
    /// The primitive's kind, for the documentation ("a circle is a wheel or a clock face").
    pub primitive: &'static str,
    /// Indices into [`COLOURS`].
    pub colours: &'static [usize],
}

const RED: usize = 0;
const ORANGE: usize = 1;
const YELLOW: usize = 2;
const GREEN: usize = 3;
const BLUE: usize = 4;
const PURPLE: usize = 5;
const BROWN: usize = 6;
const BLACK: usize = 7;
const WHITE: usize = 8;
const GREY: usize = 9;

/// The part types. Several share a primitive, and several are shared between object classes.
pub const PARTS: &[PartType] = &[
    PartType { name: "wall", primitive: "rectangle", colours: &[RED, YELLOW, WHITE, BROWN, BLUE] },
    PartType { name: "roof", primitive: "triangle", colours: &[RED, BROWN, BLACK, GREY] },
    PartType { name: "door", primitive: "rectangle", colours: &[BROWN, BLACK, GREEN] },
    PartType { name: "window", primitive: "rectangle", colours: &[BLUE, WHITE, YELLOW] },
    PartType { name: "wheel", primitive: "circle", colours: &[BLACK, GREY] },
    PartType { name: "car body", primitive: "rectangle", colours: &[RED, BLUE, YELLOW, GREEN, WHITE, ORANGE] },
    PartType { name: "clock face", primitive: "circle", colours: &[WHITE, YELLOW, GREY] },
    PartType { name: "clock hand", primitive: "rectangle", colours: &[BLACK, RED] },
    PartType { name: "sail", primitive: "triangle", colours: &[WHITE, RED, YELLOW, ORANGE] },
    PartType { name: "hull", primitive: "rectangle", colours: &[BROWN, BLUE, BLACK, RED] },
    PartType { name: "mast", primitive: "rectangle", colours: &[BROWN, BLACK] },
    PartType { name: "fin", primitive: "triangle", colours: &[ORANGE, BLUE, RED, GREY] },
    PartType { name: "fish body", primitive: "ellipse", colours: &[ORANGE, BLUE, YELLOW, PURPLE] },
    PartType { name: "eye", primitive: "circle", colours: &[BLACK, WHITE] },
    PartType { name: "trunk", primitive: "rectangle", colours: &[BROWN] },
    PartType { name: "crown", primitive: "ellipse", colours: &[GREEN, ORANGE, YELLOW] },
    PartType { name: "petal", primitive: "ellipse", colours: &[RED, PURPLE, YELLOW, WHITE, ORANGE] },
    PartType { name: "stem", primitive: "rectangle", colours: &[GREEN] },
    PartType { name: "nose cone", primitive: "triangle", colours: &[RED, GREY, WHITE] },
    PartType { name: "frame", primitive: "rectangle", colours: &[RED, BLUE, BLACK, GREEN] },
    PartType { name: "flower centre", primitive: "circle", colours: &[YELLOW, ORANGE, BROWN] },
];

/// One part of an object: its type (index into [`PARTS`]) and where it sits in the unit frame.
pub struct PartPlacement {
    pub part: usize,
    pub shape: Shape,
}

/// An object class: the parts it is built from, back to front.
pub struct ObjectClass {
    pub name: &'static str,
    pub parts: &'static [PartPlacement],
}

const WALL: usize = 0;
const ROOF: usize = 1;
const DOOR: usize = 2;
const WINDOW: usize = 3;
const WHEEL: usize = 4;
const CAR_BODY: usize = 5;
const CLOCK_FACE: usize = 6;
const CLOCK_HAND: usize = 7;
const SAIL: usize = 8;
const HULL: usize = 9;
const MAST: usize = 10;
const FIN: usize = 11;
const FISH_BODY: usize = 12;
const EYE: usize = 13;
const TRUNK: usize = 14;
const CROWN: usize = 15;
const PETAL: usize = 16;
const STEM: usize = 17;
const NOSE_CONE: usize = 18;
const FRAME: usize = 19;
const CENTRE: usize = 20;

const fn p(part: usize, shape: Shape) -> PartPlacement {
    PartPlacement { part, shape }
}
const fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Shape {
    Shape::Rect { x0, y0, x1, y1 }
}
const fn circle(cx: f64, cy: f64, r: f64) -> Shape {
    Shape::Circle { cx, cy, r }
}
const fn ellipse(cx: f64, cy: f64, rx: f64, ry: f64) -> Shape {
    Shape::Ellipse { cx, cy, rx, ry }
}
const fn tri(a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> Shape {
    Shape::Triangle { a, b, c }
}

/// The object classes. Shared parts: wheel (car, truck, bicycle), window (house, car, truck,
/// rocket), wall (house, truck, rocket), car body (car, truck), fin (fish, rocket); shared
/// primitives: circles are wheels, clock faces, eyes and flower centres; triangles are roofs,
/// sails, fins and nose cones; ellipses are fish bodies, tree crowns and petals.
pub const OBJECTS: &[ObjectClass] = &[
    ObjectClass {
        name: "house",
        parts: &[
            p(WALL, rect(-0.7, -0.1, 0.7, 0.9)),
            p(ROOF, tri((-0.85, -0.1), (0.85, -0.1), (0.0, -0.85))),
            p(DOOR, rect(-0.15, 0.35, 0.15, 0.9)),
            p(WINDOW, rect(-0.55, 0.1, -0.3, 0.35)),
            p(WINDOW, rect(0.3, 0.1, 0.55, 0.35)),
        ],
    },
    ObjectClass {
        name: "car",
        parts: &[
            p(CAR_BODY, rect(-0.9, -0.05, 0.9, 0.45)),
            p(CAR_BODY, rect(-0.5, -0.45, 0.45, -0.05)),
            p(WINDOW, rect(-0.4, -0.38, 0.35, -0.1)),
            p(WHEEL, circle(-0.5, 0.5, 0.25)),
            p(WHEEL, circle(0.5, 0.5, 0.25)),
        ],
    },
    ObjectClass {
        name: "truck",
        parts: &[
            p(WALL, rect(-0.9, -0.6, 0.3, 0.4)),
            p(CAR_BODY, rect(0.3, -0.25, 0.9, 0.4)),
            p(WINDOW, rect(0.45, -0.15, 0.8, 0.1)),
            p(WHEEL, circle(-0.6, 0.5, 0.2)),
            p(WHEEL, circle(-0.1, 0.5, 0.2)),
            p(WHEEL, circle(0.6, 0.5, 0.2)),
        ],
    },
    ObjectClass {
        name: "clock",
        parts: &[
            p(CLOCK_FACE, circle(0.0, 0.0, 0.85)),
            p(CLOCK_HAND, rect(-0.05, -0.65, 0.05, 0.0)),
            p(CLOCK_HAND, rect(0.0, -0.05, 0.5, 0.05)),
        ],
    },
    ObjectClass {
        name: "sailboat",
        parts: &[
            p(HULL, rect(-0.8, 0.45, 0.8, 0.75)),
            p(MAST, rect(-0.04, -0.85, 0.04, 0.45)),
            p(SAIL, tri((0.08, -0.8), (0.08, 0.35), (0.7, 0.35))),
            p(SAIL, tri((-0.08, -0.6), (-0.08, 0.35), (-0.55, 0.35))),
        ],
    },
    ObjectClass {
        name: "fish",
        parts: &[
            p(FIN, tri((0.45, 0.0), (0.95, -0.45), (0.95, 0.45))),
            p(FISH_BODY, ellipse(-0.1, 0.0, 0.65, 0.38)),
            p(FIN, tri((-0.2, -0.3), (0.15, -0.3), (0.0, -0.6))),
            p(EYE, circle(-0.45, -0.08, 0.1)),
        ],
    },
    ObjectClass {
        name: "tree",
        parts: &[p(TRUNK, rect(-0.12, 0.1, 0.12, 0.9)), p(CROWN, ellipse(0.0, -0.25, 0.6, 0.55))],
    },
    ObjectClass {
        name: "flower",
        parts: &[
            p(STEM, rect(-0.05, 0.0, 0.05, 0.95)),
            p(PETAL, ellipse(0.0, -0.6, 0.18, 0.3)),
            p(PETAL, ellipse(0.0, 0.0, 0.18, 0.3)),
            p(PETAL, ellipse(-0.3, -0.3, 0.3, 0.18)),
            p(PETAL, ellipse(0.3, -0.3, 0.3, 0.18)),
            p(CENTRE, circle(0.0, -0.3, 0.13)),
        ],
    },
    ObjectClass {
        name: "rocket",
        parts: &[
            p(FIN, tri((-0.25, 0.35), (-0.25, 0.85), (-0.6, 0.85))),
            p(FIN, tri((0.25, 0.35), (0.25, 0.85), (0.6, 0.85))),
            p(WALL, rect(-0.25, -0.45, 0.25, 0.85)),
            p(NOSE_CONE, tri((-0.25, -0.45), (0.25, -0.45), (0.0, -0.95))),
            p(WINDOW, rect(-0.12, -0.2, 0.12, 0.05)),
        ],
    },
    ObjectClass {
        name: "bicycle",
        parts: &[
            p(WHEEL, circle(-0.55, 0.35, 0.35)),
            p(WHEEL, circle(0.55, 0.35, 0.35)),
            p(FRAME, rect(-0.55, 0.0, 0.55, 0.08)),
            p(FRAME, rect(-0.04, -0.35, 0.04, 0.35)),
            p(FRAME, rect(0.45, -0.45, 0.53, 0.35)),
        ],
    },
];
