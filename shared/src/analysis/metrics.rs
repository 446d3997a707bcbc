//! Neuron and representation metrics, as defined in `../shared/docs/mission.md` and
//! `docs/analysis.md`. Plain functions on slices, so the trainer, the tests and the explorer
//! share one definition.

use std::collections::BTreeMap;

/// Class-similarity matrix `A` for the consistency metric: 1 on the diagonal; for two classes of
/// a hierarchy (`child -> parent`), Wu-Palmer similarity `2 depth(lca) / (depth(a) + depth(b))`
/// with the root at depth 1, and 0 when they share no ancestor. Without a hierarchy, identity.
pub fn class_similarity(classes: &[String], hierarchy: &BTreeMap<String, String>) -> Vec<Vec<f64>> {
    let chain = |c: &str| {
        let mut path = vec![c.to_string()];
        let mut at = c;
        while let Some(p) = hierarchy.get(at) {
            if path.contains(p) {
                break; // a cycle; validated bundles have none
            }
            path.push(p.clone());
            at = p;
        }
        path // class, parent, ..., root
    };
    let chains: Vec<Vec<String>> = classes.iter().map(|c| chain(c)).collect();
    let k = classes.len();
    let mut a = vec![vec![0.0; k]; k];
    for i in 0..k {
        for j in 0..k {
            if i == j {
                a[i][j] = 1.0;
                continue;
            }
            let (ci, cj) = (&chains[i], &chains[j]);
            if let Some(pos) = ci.iter().position(|n| cj.contains(n)) {
                let lca = &ci[pos];
                let depth = |chain: &Vec<String>, node: &String| chain.len() - chain.iter().position(|n| n == node).unwrap();
                let d_lca = depth(ci, lca) as f64;
                a[i][j] = 2.0 * d_lca / (ci.len() as f64 + cj.len() as f64);
            }
        }
    }
    a
}

/// A histogram of class labels, normalised to sum 1 (all zeros for no labels).
pub fn class_histogram(labels: &[usize], classes: usize) -> Vec<f64> {
    let mut h = vec![0.0; classes];
    for &l in labels {
        h[l] += 1.0;
    }
    let n = labels.len().max(1) as f64;
    h.iter_mut().for_each(|v| *v /= n);
    h
}

/// consis(n) = p^T A p for a neuron's class histogram `p` of its top-K images.
/// 1 when all top images share a class; 1/K-ish when they spread over unrelated classes.
pub fn consistency(p: &[f64], a: &[Vec<f64>]) -> f64 {
    (0..p.len()).map(|i| (0..p.len()).map(|j| p[i] * a[i][j] * p[j]).sum::<f64>()).sum()
}

/// The chance level of consis: its expected value when a neuron's top-K images are K draws
/// (with replacement) from a class-balanced set, i.e. when the neuron ignores class entirely.
/// With counts ~ Multinomial(K, u), u = 1/C: E[p_i p_j] = (1 - 1/K) u_i u_j + [i = j] u_i / K, so
///
///   E[consis] = (1 - 1/K) * sum_ij A_ij / C^2 + trace(A) / (C K)
///
/// (with A the identity: 1/C + (1 - 1/C)/K, e.g. 0.19 for 10 classes and K = 10). A neuron's
/// consis means something only well above this.
pub fn consistency_chance(a: &[Vec<f64>], k: usize) -> f64 {
    let c = a.len() as f64;
    if a.is_empty() || k == 0 {
        return 0.0;
    }
    let k = k as f64;
    let sum: f64 = a.iter().flatten().sum();
    let trace: f64 = (0..a.len()).map(|i| a[i][i]).sum();
    (1.0 - 1.0 / k) * sum / (c * c) + trace / (c * k)
}

/// Cosine similarity (0 when either vector is zero). CS1 / CS2 of the paper are this between a
/// neuron's histogram of top real images and of top adversarial images counted by their source
/// class (CS1) or by their target class (CS2).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// The chance level of CS for a neuron whose top real images have class histogram `p`
/// (summing to 1): its cosine with a class-uniform histogram u = 1/C, the histogram of
/// adversarial images whose classes the neuron ignores,
///
///   cos(p, u) = (sum_i p_i / C) / (||p|| / sqrt(C)) = 1 / (sqrt(C) ||p||) = 1 / sqrt(C consis)
///
/// (consis with A the identity). A weakly selective neuron has a high chance level: 0.71 for
/// C = 10 and consis 0.2, so its CS1 says little unless well above that.
pub fn cosine_chance(p: &[f64]) -> f64 {
    let c = p.len();
    let uniform = vec![1.0 / c.max(1) as f64; c];
    cosine(p, &uniform)
}

/// r = ||phi(x*) - mu_s|| / ||phi(x*) - mu_t||: above 1 when the adversarial representation
/// lies nearer the target class's mean than the source class's.
pub fn representation_ratio(phi_adv: &[f32], mu_source: &[f32], mu_target: &[f32]) -> f64 {
    let dist = |m: &[f32]| phi_adv.iter().zip(m).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt();
    dist(mu_source) / dist(mu_target).max(1e-30)
}

/// The value above which the top `fraction` of `values` lies (Network Dissection uses 0.005).
pub fn top_quantile(values: &[f32], fraction: f64) -> f32 {
    if values.is_empty() {
        return f32::INFINITY;
    }
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    let keep = ((v.len() as f64 * fraction).ceil() as usize).clamp(1, v.len());
    v[v.len() - keep]
}

/// Bilinear upsampling of a `h x w` map to `side x side` (pixel centres aligned, as PyTorch's
/// `align_corners=False`).
pub fn upsample(map: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(out_h * out_w);
    for y in 0..out_h {
        let sy = ((y as f64 + 0.5) * h as f64 / out_h as f64 - 0.5).clamp(0.0, (h - 1) as f64);
        let (y0, fy) = (sy.floor() as usize, sy - sy.floor());
        let y1 = (y0 + 1).min(h - 1);
        for x in 0..out_w {
            let sx = ((x as f64 + 0.5) * w as f64 / out_w as f64 - 0.5).clamp(0.0, (w - 1) as f64);
            let (x0, fx) = (sx.floor() as usize, sx - sx.floor());
            let x1 = (x0 + 1).min(w - 1);
            let at = |yy: usize, xx: usize| f64::from(map[yy * w + xx]);
            let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
            let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
            out.push((top * (1.0 - fy) + bottom * fy) as f32);
        }
    }
    out
}

/// Intersection over union of two masks (0 when both are empty).
pub fn iou(a: &[bool], b: &[bool]) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        inter += usize::from(x && y);
        union += usize::from(x || y);
    }
    if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }
}

/// Network Dissection's dataset-level IoU: intersections and unions summed over images first.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IouCounter {
    pub intersection: u64,
    pub union: u64,
}

impl IouCounter {
    pub fn add(&mut self, a: &[bool], b: &[bool]) {
        for (&x, &y) in a.iter().zip(b) {
            self.intersection += u64::from(x && y);
            self.union += u64::from(x || y);
        }
    }
    pub fn iou(&self) -> f64 {
        if self.union == 0 {
            0.0
        } else {
            self.intersection as f64 / self.union as f64
        }
    }
}

/// Area under the ROC curve of a score that should be higher for `positives` than for
/// `negatives` (Mann-Whitney U; ties count half). 0.5 is chance.
pub fn roc_auc(positives: &[f64], negatives: &[f64]) -> f64 {
    if positives.is_empty() || negatives.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f64, bool)> = positives.iter().map(|&s| (s, true)).chain(negatives.iter().map(|&s| (s, false))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks over ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum_pos += avg_rank * all[i..j].iter().filter(|e| e.1).count() as f64;
        i = j;
    }
    let (np, nn) = (positives.len() as f64, negatives.len() as f64);
    (rank_sum_pos - np * (np + 1.0) / 2.0) / (np * nn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_hot_histogram_has_consistency_one_and_uniform_has_one_over_k() {
        let a = class_similarity(&names(&["a", "b", "c", "d"]), &BTreeMap::new());
        assert_eq!(consistency(&class_histogram(&[2, 2, 2], 4), &a), 1.0);
        assert!((consistency(&class_histogram(&[0, 1, 2, 3], 4), &a) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn consistency_chance_equals_a_simulation_of_class_blind_neurons() {
        // Independent check: draw K labels uniformly many times and average consis.
        let h: BTreeMap<String, String> = [("cat", "mammal"), ("dog", "mammal")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        for (classes, k) in [(names(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]), 10), (names(&["cat", "dog", "car"]), 4)] {
            let a = class_similarity(&classes, &h);
            let mut rng = crate::rng::SplitMix::new(7, 0);
            let trials = 40_000;
            let mean = (0..trials)
                .map(|_| {
                    let labels: Vec<usize> = (0..k).map(|_| rng.below(classes.len())).collect();
                    consistency(&class_histogram(&labels, classes.len()), &a)
                })
                .sum::<f64>()
                / trials as f64;
            let exact = consistency_chance(&a, k);
            assert!((mean - exact).abs() < 0.005, "{} classes, K = {k}: simulated {mean}, formula {exact}", classes.len());
        }
        let identity = class_similarity(&names(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]), &BTreeMap::new());
        assert!((consistency_chance(&identity, 10) - 0.19).abs() < 1e-12);
        assert_eq!(consistency_chance(&identity, 1), 1.0, "one image is always consistent with itself");
    }

    #[test]
    fn hierarchy_similarity_is_wu_palmer() {
        // cat, dog -> mammal -> animal; car -> vehicle (no common root with animals).
        let h: BTreeMap<String, String> =
            [("cat", "mammal"), ("dog", "mammal"), ("mammal", "animal"), ("car", "vehicle")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let a = class_similarity(&names(&["cat", "dog", "car"]), &h);
        // depth(cat) = depth(dog) = 3, depth(mammal) = 2: 2*2/(3+3).
        assert!((a[0][1] - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(a[0][2], 0.0);
        assert_eq!(a[2][2], 1.0);
        // Top images half cats, half dogs: more consistent than unrelated classes would be.
        let p = [0.5, 0.5, 0.0];
        assert!((consistency(&p, &a) - (0.25 + 0.25 + 2.0 * 0.25 * 4.0 / 6.0)).abs() < 1e-12);
    }

    #[test]
    fn cosine_of_identical_histograms_is_one_and_of_disjoint_zero() {
        assert!((cosine(&[0.2, 0.8, 0.0], &[0.2, 0.8, 0.0]) - 1.0).abs() < 1e-12);
        assert!((cosine(&[0.1, 0.4, 0.0], &[0.2, 0.8, 0.0]) - 1.0).abs() < 1e-12, "scale-free");
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 1.0]), 0.0);
    }

    #[test]
    fn representation_ratio_of_hand_made_points() {
        // phi at (3, 0); source mean at origin (distance 3), target mean at (4, 0) (distance 1).
        assert!((representation_ratio(&[3.0, 0.0], &[0.0, 0.0], &[4.0, 0.0]) - 3.0).abs() < 1e-12);
        assert!(representation_ratio(&[0.5, 0.0], &[0.0, 0.0], &[4.0, 0.0]) < 1.0);
    }

    #[test]
    fn iou_of_known_masks() {
        let a = [true, true, false, false];
        let b = [false, true, true, false];
        assert!((iou(&a, &b) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&[false; 3], &[false; 3]), 0.0);
        let mut c = IouCounter::default();
        c.add(&a, &b);
        c.add(&[true, false], &[true, false]);
        assert!((c.iou() - 2.0 / 4.0).abs() < 1e-12, "summed over images: 2 of 4");
    }

    #[test]
    fn top_quantile_keeps_the_top_fraction() {
        let v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        assert_eq!(top_quantile(&v, 0.005), 995.0);
        assert_eq!(v.iter().filter(|&&x| x >= top_quantile(&v, 0.005)).count(), 5);
        assert_eq!(top_quantile(&v, 0.0), 999.0, "at least one value is kept");
    }

    #[test]
    fn upsampling_keeps_constants_and_corners() {
        assert!(upsample(&[2.0; 4], 2, 2, 8, 8).iter().all(|&v| (v - 2.0).abs() < 1e-6));
        let up = upsample(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
        assert_eq!(up[0], 0.0);
        assert_eq!(up[15], 3.0);
        assert!((up[1] - 0.25).abs() < 1e-6, "{up:?}");
    }

    #[test]
    fn roc_auc_of_separated_tied_and_reversed_scores() {
        assert_eq!(roc_auc(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
        assert_eq!(roc_auc(&[1.0, 2.0], &[3.0, 4.0]), 0.0);
        assert_eq!(roc_auc(&[1.0, 1.0], &[1.0, 1.0]), 0.5);
        assert!((roc_auc(&[2.0, 4.0], &[1.0, 3.0]) - 0.75).abs() < 1e-12);
    }
}

#[cfg(test)]
mod chance_tests {
    use super::*;

    #[test]
    fn cs_chance_is_one_over_root_c_consis() {
        // All top images of one class: consis 1, chance 1/sqrt(10).
        let one = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!((cosine_chance(&one) - 1.0 / 10f64.sqrt()).abs() < 1e-12);
        // Uniform: consis 1/C, chance 1.
        assert!((cosine_chance(&[0.25; 4]) - 1.0).abs() < 1e-12);
        // The example: 10 classes, consis 0.2 -> about 0.71.
        let p = [0.4, 0.2, 0.2, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0];
        let consis: f64 = p.iter().map(|x| x * x).sum();
        assert!((consis - 0.26).abs() < 1e-12);
        assert!((cosine_chance(&p) - 1.0 / (10.0 * consis).sqrt()).abs() < 1e-12);
    }
}
