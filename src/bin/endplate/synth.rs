//! `endplate synth`: a phantom data set (PNG slices, manifest, truth), rendered on all cores.

use crate::common::threads_or_all;
use clap::Args;
use endplate::manifest::{self, Row};
use endplate::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct SynthArgs {
    /// Output folder (images/, manifest.csv, truth.json)
    #[arg(long)]
    out: PathBuf,
    /// Number of subjects (five discs each, L1L2..L5S1)
    #[arg(long, default_value_t = 10)]
    subjects: usize,
    /// Seed: the same seed gives the same bytes
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Bits per pixel of the PNGs
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(8..=16))]
    bits: u16,
    /// Class frequencies: the paper's Tables 1-2, or a quarter each
    #[arg(long, default_value = "paper")]
    class_mix: String,
    /// Rendering threads (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
}

fn encode_png(slice: &endplate::Slice) -> Result<Vec<u8>> {
    let (w, h) = (slice.width as u32, slice.height as u32);
    let mut out = Vec::new();
    let mut cursor = std::io::Cursor::new(&mut out);
    let r = if slice.bits <= 8 {
        image::GrayImage::from_raw(w, h, slice.pixels.iter().map(|&v| v as u8).collect())
            .expect("size")
            .write_to(&mut cursor, image::ImageFormat::Png)
    } else {
        image::ImageBuffer::<image::Luma<u16>, _>::from_raw(
            w,
            h,
            slice.pixels.iter().map(|&v| v as u16).collect::<Vec<u16>>(),
        )
        .expect("size")
        .write_to(&mut cursor, image::ImageFormat::Png)
    };
    r.map_err(|e| Error::Invalid(format!("encoding PNG: {e}")))?;
    Ok(out)
}

/// One rendered subject's manifest rows and truth records.
type SubjectRows = (Vec<Row>, Vec<serde_json::Value>);

pub fn run(a: SynthArgs) -> Result<()> {
    use endplate::phantom::{plan_subject, render, ClassMix};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let mix: ClassMix = a.class_mix.parse()?;
    if a.bits != 8 && a.bits != 16 {
        return Err(Error::Invalid(format!("--bits {}: give 8 or 16", a.bits)));
    }
    let threads = threads_or_all(a.threads);
    let images = a.out.join("images");
    std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
    let bar = indicatif::ProgressBar::new(a.subjects as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} slices  {per_sec}  eta {eta}",
        )
        .expect("template"),
    );
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<SubjectRows>>> = Mutex::new(vec![None; a.subjects]);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= a.subjects || failure.lock().unwrap().is_some() {
                    break;
                }
                let plan = plan_subject(a.seed, i, mix, a.bits);
                let ph = render(&plan);
                let file = format!("images/{}.png", plan.id);
                let written = encode_png(&ph.slice).and_then(|png| endplate::files::write_atomic(&a.out.join(&file), &png));
                if let Err(e) = written {
                    *failure.lock().unwrap() = Some(e);
                    break;
                }
                let rows = ph.discs.iter().map(|d| Row { image: file.clone(), subject: plan.id.clone(), level: Some(d.level), label: Some(d.class.into()), corners: d.corners }).collect();
                let truth = ph.discs.iter().map(|d| serde_json::json!({"image": file, "subject": plan.id, "age": plan.age, "spacing_mm": plan.spacing_mm, "disc": d})).collect();
                results.lock().unwrap()[i] = Some((rows, truth));
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    let (mut rows, mut truth) = (Vec::new(), Vec::new());
    for (r, t) in results.into_inner().unwrap().into_iter().flatten() {
        rows.extend(r);
        truth.extend(t);
    }
    endplate::files::write_atomic(
        &a.out.join("manifest.csv"),
        manifest::write(&rows, &[], &[]).as_bytes(),
    )?;
    let truth = serde_json::json!({"seed": a.seed, "class_mix": a.class_mix, "bits": a.bits, "discs": truth});
    endplate::files::write_atomic(
        &a.out.join("truth.json"),
        serde_json::to_string_pretty(&truth)
            .expect("json")
            .as_bytes(),
    )?;
    let secs = start.elapsed().as_secs_f64();
    let mut counts = [0usize; 4];
    rows.iter()
        .for_each(|r| counts[r.label.map(|l| l.key()).unwrap_or(0).min(3)] += 1);
    eprintln!(
        "{} slices, {} discs (normal {}, wavy {}, notched {}, schmorl {}) in {:.1} s: {:.2} slices/s on {} thread{} -> {}",
        a.subjects, rows.len(), counts[0], counts[1], counts[2], counts[3], secs, a.subjects as f64 / secs, threads,
        if threads == 1 { "" } else { "s" }, a.out.display()
    );
    Ok(())
}
