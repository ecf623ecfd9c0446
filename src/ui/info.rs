//! The Info panel: the current node's info channels, live; its message rate over the last
//! minute; and for a Web Server DAT its connected clients, each with a close button.

use egui::{RichText, Ui};

use super::actions::Action;
use super::graph::badge_ui;
use super::rates::{Rates, format_rate};
use crate::engine::{Command, World, info};
use crate::ops::webserver;
use crate::project::NodeId;
use crate::schema::OpKind;

/// The Channels CHOP plot's state: the channels shown, and what was on screen when paused.
#[derive(Default, Debug)]
pub struct ChannelPlot {
    node: Option<NodeId>,
    selected: std::collections::BTreeSet<String>,
    frozen: Option<Vec<(String, Vec<f64>)>>,
}

pub fn show(
    ui: &mut Ui,
    world: &World,
    id: NodeId,
    rates: &Rates,
    plot: &mut ChannelPlot,
    actions: &mut Vec<Action>,
) {
    let Some(node) = world.project.node(id) else {
        return;
    };
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        ui.strong(format!("Info: {}", node.name));
        if matches!(node.kind, OpKind::WebServer | OpKind::WebSocket) {
            let badge = world.badge(id);
            badge_ui(ui, badge, RichText::new(badge.label()));
        }
    });
    egui::ScrollArea::vertical()
        // One scroll position per node: another node's Info starts at its top (its rate plot).
        .id_salt(("info-scroll", id))
        .auto_shrink([false, false])
        .show(ui, |ui| {
            if let Some(rate) = rates.rate(id) {
                ui.label(format!("message rate: {}", format_rate(rate)));
                sparkline(ui, id, &rates.history(id));
            }
            if node.kind == OpKind::WebServer {
                clients(ui, world, id, actions);
            }
            if node.kind == OpKind::Channels {
                channel_plot(ui, world, id, plot);
            }
            // One label per channel, aligned in monospace like TouchDesigner's info list; a
            // single label keeps name and value together for screen readers and tests.
            for (name, value) in info::channels(world, id) {
                ui.add(
                    egui::Label::new(
                        RichText::new(format!("{name:<22}{}", format_value(value))).monospace(),
                    )
                    .wrap_mode(egui::TextWrapMode::Extend),
                );
            }
        });
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:>12.0}")
    } else {
        format!("{value:>12.4}")
    }
}

fn sparkline(ui: &mut Ui, id: NodeId, points: &[[f64; 2]]) {
    let line =
        egui_plot::Line::new("msg/s", egui_plot::PlotPoints::from(points.to_vec())).fill(0.0);
    egui_plot::Plot::new(("rate", id))
        .height(56.0)
        .show_axes([false, true])
        .show_grid(false)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .allow_double_click_reset(false)
        .include_y(0.0)
        .y_axis_min_width(28.0)
        .show_background(false)
        .show(ui, |plot| plot.line(line));
}

fn clients(ui: &mut Ui, world: &World, id: NodeId, actions: &mut Vec<Action>) {
    let clients = webserver::clients(world, id);
    ui.add_space(4.0);
    ui.strong(format!("WebSocket clients ({})", clients.len()));
    if clients.is_empty() {
        ui.weak("No client connected.");
        ui.add_space(4.0);
        return;
    }
    let now = crate::engine::unix_time_ms();
    // One small block per client rather than a wide table: the panel is narrow, and a
    // horizontal scroll bar would float over the last row's buttons.
    for client in &clients {
        egui::Frame::group(ui.style())
            .inner_margin(4.0)
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.horizontal(|ui| {
                    if ui
                        .small_button("Close")
                        .on_hover_text("Close this connection (normal close frame)")
                        .clicked()
                    {
                        actions.push(Action::Run(Command::CloseClient {
                            id,
                            client: client.address.clone(),
                        }));
                    }
                    ui.monospace(&client.address);
                    ui.label(&client.uri);
                });
                ui.label(
                    RichText::new(format!(
                        "since {} · in {} msg / {} · out {} msg / {} · last {}",
                        ago(now, client.connected_since_ms),
                        client.messages_in,
                        bytes(client.bytes_in),
                        client.messages_out,
                        bytes(client.bytes_out),
                        ago(now, client.last_activity_ms),
                    ))
                    .small(),
                );
            });
    }
    ui.add_space(4.0);
}

fn ago(now_ms: i64, then_ms: i64) -> String {
    let s = (now_ms - then_ms).max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s / 60) % 60),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// Longest channel list drawn; the output table has them all.
const MAX_LISTED_CHANNELS: usize = 200;

fn channel_plot(ui: &mut Ui, world: &World, id: NodeId, plot: &mut ChannelPlot) {
    let Some(rt) = crate::ops::channels::runtime_ref(world, id) else {
        return;
    };
    if plot.node != Some(id) {
        *plot = ChannelPlot {
            node: Some(id),
            ..ChannelPlot::default()
        };
    }
    if plot.selected.is_empty() {
        plot.selected
            .extend(rt.channels().iter().take(4).map(|c| c.name.clone()));
    }
    ui.horizontal(|ui| {
        ui.strong(format!("Channels ({})", rt.channels().len()));
        let mut paused = plot.frozen.is_some();
        if ui
            .toggle_value(&mut paused, "Pause plot")
            .on_hover_text("Freeze the plot")
            .changed()
        {
            plot.frozen = paused.then(|| series(rt, &plot.selected));
        }
    });
    let lines = plot
        .frozen
        .clone()
        .unwrap_or_else(|| series(rt, &plot.selected));
    egui_plot::Plot::new(("channels", id))
        .height(160.0)
        .legend(egui_plot::Legend::default())
        .show(ui, |p| {
            for (name, values) in lines {
                let points: egui_plot::PlotPoints = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| [i as f64, *v])
                    .collect();
                p.line(egui_plot::Line::new(name, points));
            }
        });
    for channel in rt.channels().iter().take(MAX_LISTED_CHANNELS) {
        let mut on = plot.selected.contains(&channel.name);
        let label = format!("{} = {}", channel.name, channel.value);
        if ui
            .checkbox(&mut on, RichText::new(label).monospace())
            .changed()
        {
            if on {
                plot.selected.insert(channel.name.clone());
            } else {
                plot.selected.remove(&channel.name);
            }
        }
    }
}

fn series(
    rt: &crate::ops::channels::Runtime,
    selected: &std::collections::BTreeSet<String>,
) -> Vec<(String, Vec<f64>)> {
    rt.channels()
        .iter()
        .filter(|c| selected.contains(&c.name))
        .map(|c| (c.name.clone(), c.history.iter().copied().collect()))
        .collect()
}
