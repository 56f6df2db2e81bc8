//! (work in progress)

pub fn bench(_c: &mut criterion::Criterion) {}
