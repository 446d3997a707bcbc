//! The study: what measures and decides the paper's claims, and how `advlens reproduce` runs it.
//! It grows here file by file (see issue 16): the presets (`preset`), the plan of jobs per
//! replicate and the results read back (`plan`), the typed configuration of each step and its
//! command line (`steps`), the scheduler that runs this binary's steps (`schedule`), the statistics that turn per-neuron numbers from several replicates into
//! intervals and verdicts (`stats`), the rows a reproduction measured (`results`), the claims
//! decided from them (`claims`), and the report and figures (`report`, `figures`).
//! Imports run one way: report -> claims -> results, stats; plan -> preset, schedule, steps,
//! results; schedule -> steps.

pub mod claims;
pub mod figures;
pub mod plan;
pub mod preset;
pub mod report;
pub mod results;
pub mod schedule;
pub mod stats;
pub mod steps;
