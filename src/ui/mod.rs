//! The desktop app (eframe). For now a plain window: the nodes, their info and the console.
//! It reads the engine under a short lock and never waits on the network.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::info;
use crate::runner::Runner;

pub fn run(project_path: PathBuf) -> Result<(), String> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(window_title(&project_path))
            .with_inner_size([1100.0, 700.0]),
        ..Default::default()
    };
    eframe::run_native(
        "datpatch",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let waker: crate::engine::Waker = Arc::new(move || ctx.request_repaint());
            let runner = Runner::start_file(&project_path, Some(waker), &[])?;
            Ok(Box::new(App {
                runner,
                project_path,
            }))
        }),
    )
    .map_err(|e| e.to_string())
}

fn window_title(path: &std::path::Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "untitled".into(), |n| n.to_string_lossy().into_owned());
    format!("{name} — datpatch")
}

struct App {
    runner: Runner,
    project_path: PathBuf,
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let engine = self.runner.engine.lock();
        let world = engine.world();
        egui::Panel::bottom("console")
            .resizable(true)
            .show(ui, |ui| {
                ui.heading("Console");
                egui::ScrollArea::vertical()
                    .stick_to_bottom(true)
                    .show(ui, |ui| {
                        for line in world.console.lines() {
                            ui.monospace(line.to_string());
                        }
                    });
            });
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading(self.project_path.display().to_string());
            ui.label(format!("frame {}", world.frame));
            egui::ScrollArea::vertical().show(ui, |ui| {
                for node in &world.project.nodes {
                    ui.collapsing(format!("{} ({})", node.name, node.kind.label()), |ui| {
                        for (name, value) in info::channels(world, node.id) {
                            ui.label(format!("{name}: {value}"));
                        }
                    });
                }
            });
        });
    }
}
