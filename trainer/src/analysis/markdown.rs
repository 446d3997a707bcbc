//! The human-readable form of an [`AnalysisReport`] (`analysis.md`).

use super::AnalysisReport;

impl AnalysisReport {
    /// A Markdown summary: the paper's claims with our numbers.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "## {} — layer `{}`\n\n{} real images, {} adversarial ({} successful), top-{} images per neuron, {} neurons ({} silent: \
             they fire on fewer than {} real or adversarial images and are left out of the means).\n\n",
            self.model, self.layer, self.real_images, self.adversarial_images, self.successful, self.top_k, self.neurons.len(),
            self.silent_neurons, self.top_k
        );
        s += "| measure | value |\n|---|---|\n";
        s += &format!("| mean consis, real top images | {:.3} |\n", self.mean_consis_real);
        s += &format!("| mean consis, adversarial top images by source class | {:.3} |\n", self.mean_consis_adv_source);
        if let Some(v) = self.mean_consis_adv_target {
            s += &format!("| mean consis, adversarial top images by target class | {v:.3} |\n");
        }
        s += &format!("| mean CS1 (real vs adversarial-by-source histograms) | {:.3} |\n", self.mean_cs1);
        if let Some(v) = self.mean_cs2 {
            s += &format!("| mean CS2 (real vs adversarial-by-target histograms) | {v:.3} |\n");
        }
        if let Some(o) = &self.successful_only {
            s += &format!(
                "| successful adversarial images only ({}; {} neurons): consis by source, CS1, CS2 | {:.3}, {:.3}, {} |\n",
                o.images,
                o.neurons,
                o.mean_consis_adv_source,
                o.mean_cs1,
                o.mean_cs2.map_or("-".into(), |v| format!("{v:.3}"))
            );
        }
        if let Some(f) = self.fraction_r_above_1 {
            let mut r = self.r.clone();
            r.sort_by(f64::total_cmp);
            s += &format!("| representation ratio r > 1 (nearer the target class) | {:.1}% of {} (median r {:.3}) |\n", 100.0 * f, r.len(), r[r.len() / 2]);
        }
        if let Some(a) = self.trace_auc {
            s += &format!("| ROC AUC, top-{} neuron disagreement flags adversarial inputs | {a:.3} |\n", self.trace_top);
        }
        if let Some(a) = self.trace_auc_ablation {
            s += &format!("| the same, neurons ranked by the prediction difference (logit fall when zeroed) | {a:.3} |\n");
        }
        if !self.detectors_real.is_empty() || !self.detectors_adv.is_empty() {
            s += &format!("| concept detectors (IoU > 0.04), real images | {:?} |\n", self.detectors_real);
            s += &format!("| concept detectors (IoU > 0.04), adversarial images | {:?} |\n", self.detectors_adv);
        }
        s
    }
}

