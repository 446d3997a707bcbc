//! The visitor's own images: a drawing or an upload shown through the URL, and fresh
//! concept-world images.

use std::rc::Rc;

use super::{set_status, show_notices, App, Nav};
use crate::state::ImageKind;

impl App {
    /// Shows the visitor's own image (drawn or uploaded): its bytes go into the URL.
    pub async fn show_own_image(self: &Rc<Self>, pixels: Vec<u8>) {
        let mut next = self.state.borrow().clone();
        next.pixels = Some(pixels);
        next.concept = None;
        next.image = ImageKind::Real;
        next.class = None;
        self.navigate(&next.to_query(), Nav::Push).await;
    }

    /// The side of the loaded model's input images.
    pub fn input_side(&self) -> Option<usize> {
        self.model.borrow().as_ref().map(|m| m.info.input_shape()[1])
    }

    /// A fresh concept-world image, generated in the page.
    pub async fn show_new_concept(self: &Rc<Self>) {
        let mut next = self.state.borrow().clone();
        next.pixels = None;
        next.concept = Some((js_sys::Math::random() * 1e6) as u64);
        next.image = ImageKind::Real;
        next.class = None;
        self.navigate(&next.to_query(), Nav::Push).await;
    }

    /// An uploaded file: checked, decoded, scaled and shown — or a message saying why not.
    pub async fn upload(self: &Rc<Self>, file: web_sys::File) {
        let Some(model) = self.model.borrow().clone() else { return };
        set_status("working", &format!("Reading {}…", file.name()));
        match crate::own_image::upload(file, model.info.input_shape()).await {
            Ok((pixels, what)) => {
                self.show_own_image(pixels).await;
                show_notices(&[format!("your image: {what}")]);
            }
            Err(e) => {
                show_notices(&[format!("{e}; the page still shows the previous image")]);
                set_status("ready", &format!("The upload was not used: {e}"));
            }
        }
    }
}

