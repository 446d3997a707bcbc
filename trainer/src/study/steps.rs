//! The steps of a reproduction as typed configurations: one struct per subcommand it runs, with
//! the values it sets, and one place that spells them as this binary's flags
//! ([`StepConfig::args`]). Steps run as child processes (each with its own libtorch threads, and
//! an interrupted one loses only itself); the binary's tests parse every step of every preset
//! with the real command line and compare what clap read with the config, so a renamed or
//! retyped flag fails a test instead of a reproduction hours in.

use std::path::PathBuf;

/// `advlens data concepts`: the concept world's images.
#[derive(Clone, Debug, PartialEq)]
pub struct ConceptsStep {
    pub train: usize,
    pub test: usize,
    pub seed: u64,
    pub out: PathBuf,
}

/// The training mode: `standard`, `pgd` or `consistent` (with its lambda and attack).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainMode {
    pub mode: String,
    /// The consistent loss's weight (`None`: the CLI default, 1).
    pub lambda: Option<f64>,
    /// The consistent loss's attack (`None`: the CLI default, PGD).
    pub attack: Option<String>,
    /// The consistent loss's feature distance (`None`: the CLI default, the mean).
    pub distance: Option<String>,
}

/// `advlens train`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainStep {
    pub dataset: String,
    pub data: PathBuf,
    pub arch: String,
    pub width: usize,
    pub mode: TrainMode,
    pub attack_steps: usize,
    pub epochs: usize,
    pub name: String,
    pub out: PathBuf,
    pub seed: u64,
    pub epsilon: f64,
    pub step_size: f64,
    pub epsilon_warmup: f64,
    pub limit: Option<usize>,
    pub threads: usize,
}

/// `advlens train --resume`: continue an interrupted run with its saved configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ResumeStep {
    pub data: PathBuf,
    pub out: PathBuf,
    pub threads: usize,
}

/// `advlens eval`.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalStep {
    pub run: PathBuf,
    pub data: PathBuf,
    pub attacks: Vec<String>,
    pub limit: usize,
    pub seed: u64,
    /// `None`: the dataset's default.
    pub epsilon: Option<f64>,
    pub threads: usize,
}

/// `advlens export`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportStep {
    pub run: PathBuf,
    pub data: PathBuf,
    pub out: PathBuf,
    pub threads: usize,
}

/// `advlens attack`: the ensemble attack, one model held out.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackStep {
    pub models: Vec<PathBuf>,
    pub held_out: PathBuf,
    pub data: PathBuf,
    pub limit: usize,
    pub steps: usize,
    pub out: PathBuf,
    pub seed: u64,
    /// `None`: the dataset's default.
    pub epsilon: Option<f64>,
    pub threads: usize,
}

/// `advlens analyze`.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyzeStep {
    pub model: PathBuf,
    pub adv: PathBuf,
    pub data: PathBuf,
    pub limit: usize,
    pub atlas: bool,
    pub out: PathBuf,
    pub threads: usize,
}

/// One step of a reproduction.
#[derive(Clone, Debug, PartialEq)]
pub enum StepConfig {
    Concepts(ConceptsStep),
    Train(TrainStep),
    Resume(ResumeStep),
    Eval(EvalStep),
    Export(ExportStep),
    Attack(AttackStep),
    Analyze(AnalyzeStep),
}

impl StepConfig {
    /// The seed of a step that draws random numbers (export and resume draw none of their own).
    pub fn seed(&self) -> Option<u64> {
        match self {
            StepConfig::Concepts(s) => Some(s.seed),
            StepConfig::Train(s) => Some(s.seed),
            StepConfig::Eval(s) => Some(s.seed),
            StepConfig::Attack(s) => Some(s.seed),
            StepConfig::Resume(_) | StepConfig::Export(_) | StepConfig::Analyze(_) => None,
        }
    }

    /// The subcommand's name.
    pub fn verb(&self) -> &'static str {
        match self {
            StepConfig::Concepts(_) => "data",
            StepConfig::Train(_) | StepConfig::Resume(_) => "train",
            StepConfig::Eval(_) => "eval",
            StepConfig::Export(_) => "export",
            StepConfig::Attack(_) => "attack",
            StepConfig::Analyze(_) => "analyze",
        }
    }

    /// This binary's command line for the step (without the program name).
    pub fn args(&self) -> Vec<String> {
        let mut a = Args(Vec::new());
        match self {
            StepConfig::Concepts(s) => {
                a.words(["data", "concepts"]);
                a.flag("train", s.train).flag("test", s.test).flag("seed", s.seed).path("out", &s.out).switch("quiet");
            }
            StepConfig::Train(s) => {
                a.words(["train"]);
                a.flag("dataset", &s.dataset).path("data", &s.data).flag("arch", &s.arch).flag("width", s.width);
                a.flag("mode", &s.mode.mode);
                if let Some(lambda) = s.mode.lambda {
                    a.flag("lambda", lambda);
                }
                if let Some(attack) = &s.mode.attack {
                    a.flag("attack", attack);
                }
                if let Some(distance) = &s.mode.distance {
                    a.flag("distance", distance);
                }
                a.flag("attack-steps", s.attack_steps).flag("epochs", s.epochs).flag("name", &s.name).path("out", &s.out).flag("seed", s.seed);
                a.flag("epsilon", s.epsilon).flag("step-size", s.step_size).flag("epsilon-warmup", s.epsilon_warmup);
                if let Some(limit) = s.limit {
                    a.flag("limit", limit);
                }
                a.flag("threads", s.threads).switch("quiet");
            }
            StepConfig::Resume(s) => {
                a.words(["train"]);
                a.switch("resume").path("data", &s.data).path("out", &s.out).flag("threads", s.threads).switch("quiet");
            }
            StepConfig::Eval(s) => {
                a.words(["eval"]);
                a.path("run", &s.run).path("data", &s.data).flag("attacks", s.attacks.join(",")).flag("limit", s.limit).flag("seed", s.seed);
                if let Some(eps) = s.epsilon {
                    a.flag("epsilon", eps);
                }
                a.flag("threads", s.threads).switch("quiet");
            }
            StepConfig::Export(s) => {
                a.words(["export"]);
                a.path("run", &s.run).path("data", &s.data).path("out", &s.out).flag("threads", s.threads).switch("quiet");
            }
            StepConfig::Attack(s) => {
                a.words(["attack"]);
                let models: Vec<String> = s.models.iter().map(|m| m.display().to_string()).collect();
                a.flag("models", models.join(",")).path("held-out", &s.held_out).path("data", &s.data);
                a.flag("limit", s.limit).flag("steps", s.steps).path("out", &s.out).flag("seed", s.seed);
                if let Some(eps) = s.epsilon {
                    a.flag("epsilon", eps);
                }
                a.flag("threads", s.threads).switch("quiet");
            }
            StepConfig::Analyze(s) => {
                a.words(["analyze"]);
                a.path("model", &s.model).path("adv", &s.adv).path("data", &s.data).flag("limit", s.limit);
                if s.atlas {
                    a.switch("atlas");
                }
                a.path("out", &s.out).flag("threads", s.threads);
            }
        }
        a.0
    }
}

/// Builds a command line; every flag name of the study is written once, here.
struct Args(Vec<String>);

impl Args {
    fn words<const N: usize>(&mut self, words: [&str; N]) {
        self.0.extend(words.map(String::from));
    }
    fn flag(&mut self, name: &str, value: impl ToString) -> &mut Self {
        self.0.extend([format!("--{name}"), value.to_string()]);
        self
    }
    fn path(&mut self, name: &str, value: &std::path::Path) -> &mut Self {
        self.flag(name, value.display())
    }
    fn switch(&mut self, name: &str) -> &mut Self {
        self.0.push(format!("--{name}"));
        self
    }
}
