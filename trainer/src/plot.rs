//! The font of the PNG charts (plotters on a bitmap): embedded, so no system font is needed.
//! The charts themselves live with what they show (`train::curves`, `study::figures`).

use std::sync::Once;

use plotters::style::FontStyle;

const FONT: &str = "advlens-sans";
static REGISTER: Once = Once::new();

/// The registered font's family name (registers it on first use).
pub fn font_name() -> &'static str {
    REGISTER.call_once(|| {
        // DejaVu Sans Mono (free license, see assets/DejaVu-LICENSE).
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
        plotters::style::register_font(FONT, FontStyle::Normal, bytes).unwrap_or_else(|_| panic!("the embedded font parses"));
    });
    FONT
}
