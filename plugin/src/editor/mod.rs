//! GUI THREAD ONLY: the egui editor. It never runs inference: it sets
//! parameters through the host and reads the worker's status.

use std::sync::Arc;
use std::time::Duration;

use nice_plug::context::gui::GuiContext;
use nice_plug::editor::dpi::LogicalSize;
use nice_plug::prelude::*;
use nice_plug_egui::widgets::ParamSlider;
use nice_plug_egui::{
    EguiEditor, EguiEditorState, EguiNiceSettings, Frame, NiceEguiApp, RepaintNotifier,
};

use crate::engine::worker::{EngineState, EngineStatus};
use crate::params::{LatentTrioParams, MAX_SEED, PartParams};
use crate::pattern::Part;

/// The editor's state between frames.
pub struct EditorApp {
    params: Arc<LatentTrioParams>,
    status: Arc<EngineStatus>,
    /// Set when the window opens; used to change parameters through the host.
    context: Option<GuiContext>,
}

/// Creates the editor.
pub fn create(
    params: Arc<LatentTrioParams>,
    status: Arc<EngineStatus>,
) -> Option<EguiEditor<EditorApp>> {
    nice_plug_egui::create_egui_editor(
        EguiEditorState::from_size(LogicalSize::new(820.0, 620.0), 1.0),
        RepaintNotifier::new(),
        EguiNiceSettings {
            title: "Latent Trio".into(),
            ..EguiNiceSettings::default()
        },
        EditorApp {
            params,
            status,
            context: None,
        },
    )
}

impl NiceEguiApp for EditorApp {
    fn build(
        &mut self,
        _egui_ctx: egui::Context,
        nice_gui_ctx: GuiContext,
        _frame: &mut Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        self.context = Some(nice_gui_ctx);
        Ok(())
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut Frame) {
        let Some(context) = &self.context else {
            return;
        };
        let setter = context.param_setter();
        // The worker's status changes without any input event.
        ui.ctx().request_repaint_after(Duration::from_millis(250));
        ui.heading("Latent Trio");
        ui.label(status_line(&self.status));
        ui.separator();
        ui.horizontal(|ui| {
            ui.label("Seed");
            ui.add(ParamSlider::for_param(&self.params.seed, &setter));
            if ui.button("New seed").clicked() {
                let next = (self.params.seed.value() + 1 + fastrand_seed()) % (MAX_SEED + 1);
                setter.begin_set_parameter(&self.params.seed);
                setter.set_parameter(&self.params.seed, next);
                setter.end_set_parameter(&self.params.seed);
            }
            ui.label("Change");
            ui.add(ParamSlider::for_param(&self.params.change_every, &setter));
            ui.label("Run on");
            ui.add(ParamSlider::for_param(&self.params.provider, &setter));
        });
        ui.separator();
        ui.columns(3, |columns| {
            for (column, part) in columns.iter_mut().zip(Part::ALL) {
                part_panel(column, part, self.params.part(part), &setter, &self.status);
            }
        });
    }

    fn editor_closed(&mut self) {
        self.context = None;
    }
}

/// A jump that is different every click without a random-number crate.
fn fastrand_seed() -> i32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos % 997) as i32
}

fn status_line(status: &EngineStatus) -> String {
    let message = status.message();
    match status.state() {
        EngineState::Starting => "Loading models…".into(),
        EngineState::NoRuntime => format!("Silent: {message}"),
        EngineState::Ready => {
            let provider = status.provider().map_or("no model loaded", |p| p.label());
            let decode = status
                .last_decode_ms
                .load(std::sync::atomic::Ordering::Relaxed);
            let mut line = format!("Running on {provider} · last decode {decode:.0} ms");
            if !message.is_empty() {
                line.push_str(" · ");
                line.push_str(&message);
            }
            line
        }
    }
}

fn part_panel(
    ui: &mut egui::Ui,
    part: Part,
    params: &PartParams,
    setter: &ParamSetter,
    status: &EngineStatus,
) {
    ui.heading(part.title());
    if let Some(problem) = status.part_problem(part) {
        ui.colored_label(egui::Color32::LIGHT_RED, problem);
    }
    let row = |ui: &mut egui::Ui, label: &str, add: &dyn Fn(&mut egui::Ui)| {
        ui.horizontal(|ui| {
            ui.label(label);
            add(ui);
        });
    };
    row(ui, "On", &|ui| {
        ui.add(ParamSlider::for_param(&params.enabled, setter).with_width(80.0));
    });
    row(ui, "Channel", &|ui| {
        ui.add(ParamSlider::for_param(&params.channel, setter).with_width(80.0));
    });
    row(ui, "Temperature", &|ui| {
        ui.add(ParamSlider::for_param(&params.temperature, setter).with_width(120.0));
    });
    for (index, knob) in params.latent.iter().enumerate() {
        row(ui, &format!("Latent {}", index + 1), &|ui| {
            ui.add(ParamSlider::for_param(&knob.value, setter).with_width(120.0));
        });
    }
    row(ui, "Density", &|ui| {
        ui.add(ParamSlider::for_param(&params.density, setter).with_width(120.0));
    });
    row(ui, "Syncopation", &|ui| {
        ui.add(ParamSlider::for_param(&params.syncopation, setter).with_width(120.0));
    });
    if part != Part::Drums {
        row(ui, "Register", &|ui| {
            ui.add(ParamSlider::for_param(&params.register, setter).with_width(120.0));
        });
    }
}
